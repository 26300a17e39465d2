"""What every stage script shares: clear errors instead of tracebacks, JSON outputs written
atomically, content fingerprints. Light on purpose (no torch): every stage depends on it."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import UserError
from .files import describe_write_error, replacing


def run(main: Callable[[], None]) -> None:
    """Run a stage; a known fault ends it with one clear line and exit code 2."""
    try:
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
