"""What every stage script shares: clear errors instead of tracebacks, JSON outputs written
atomically, content fingerprints. Light on purpose (no torch): every stage depends on it."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import UserError
from .files import describe_write_error, replacing


class ForeignCodeError(UserError):
    """The stage script and the package it imported come from different copies."""


def check_own_copy(script: str | Path, package_dir: str | Path) -> None:
    """A stage must run the package of the copy it lies in (dvc.yaml's `PYTHONPATH=src`):
    a queued or temp experiment runs in a copy of the repository, and an editable install
    would otherwise import the workspace's live code, not the code its lock records."""
    own = Path(script).resolve().parent.parent / "src" / "imagenette_repro"
    if Path(package_dir).resolve() != own:
        raise ForeignCodeError(
            f"{script} imported imagenette_repro from {package_dir}, not from its own copy "
            f"{own}: run the stage through dvc (dvc.yaml sets PYTHONPATH=src) or set "
            "PYTHONPATH=src yourself"
        )


def stage_paths(doc: str | None, *names: str) -> argparse.Namespace:
    """The files a stage reads and writes, from its command line: dvc.yaml's `cmd` names
    them, so that dvc.yaml is the one map of the pipeline's files. Each name becomes a
    required option (`store_dir` -> `--store-dir PATH`)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    for name in names:
        parser.add_argument(f"--{name.replace('_', '-')}", type=Path, required=True)
    return parser.parse_args()


def run(main: Callable[[], None]) -> None:
    """Run a stage (from its own copy's package); a known fault ends it with one clear
    line and exit code 2."""
    try:
        check_own_copy(sys.argv[0], Path(__file__).parent)
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        message = describe_write_error(err.filename or "an output", err)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def write_json(path: str | Path, data: dict | list) -> None:
    """Write JSON atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def file_hash(path: str | Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    return file_hash(path, "sha256")


def fingerprint(*parts: object) -> str:
    """A short hash of JSON-able parts: what a checkpoint was made with."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
