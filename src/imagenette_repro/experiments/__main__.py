"""`python -m imagenette_repro.experiments`: the catalogue's command line (catalogue.py)."""

import sys

from .catalogue import main

sys.exit(main())
