"""Imagenette's ten classes: WNID, English name, and the report's Polish name."""

from __future__ import annotations

# In WNID order, which is also the label order (0-9).
CLASSES: list[tuple[str, str, str]] = [
    ("n01440764", "tench", "ryba"),
    ("n02102040", "English springer", "pies"),
    ("n02979186", "cassette player", "radio"),
    ("n03000684", "chain saw", "piła"),
    ("n03028079", "church", "kościół"),
    ("n03394916", "French horn", "waltornia"),
    ("n03417042", "garbage truck", "śmieciarka"),
    ("n03425413", "gas pump", "stacja benzynowa"),
    ("n03445777", "golf ball", "piłka golfowa"),
    ("n03888257", "parachute", "spadochron"),
]
WNIDS = [wnid for wnid, _, _ in CLASSES]
ENGLISH = [english for _, english, _ in CLASSES]
POLISH = [polish for _, _, polish in CLASSES]
NUM_CLASSES = len(CLASSES)
