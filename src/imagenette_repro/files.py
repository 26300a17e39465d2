"""Outputs written so that a failure leaves nothing half-done, and write faults (disk full,
read-only folder) told in one line that names the file."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import UserError

NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


class WriteError(UserError, RuntimeError):
    """An output that cannot be written; the message names it and what to do."""


def describe_write_error(path: str | Path, err: OSError) -> str | None:
    """One line for a write fault, or None when it is not one of disk space or permission."""
    if err.errno == errno.EFBIG:
        return f"{path}: file size limit reached while writing it (see `ulimit -f`)"
    if err.errno in NO_SPACE:
        return f"{path}: no space left on device while writing it; free space and run again"
    if err.errno in NOT_WRITABLE:
        return (
            f"{path}: cannot write there ({err.strerror}); make {Path(path).parent} "
            "writable and run again"
        )
    return None


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def replacing(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target` to write; rename it to `target` when the
    block succeeds, remove it when anything fails (a write fault becomes a WriteError)."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        remove(tmp)  # a leftover of a run killed before it could clean up
        yield tmp
        os.replace(tmp, target)
    except BaseException as err:
        with suppress(OSError):  # e.g. a read-only folder: there is nothing to remove
            remove(tmp)
        message = describe_write_error(target, err) if isinstance(err, OSError) else None
        if message:
            raise WriteError(message) from err
        raise


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def check_free_space(target: str | Path, needed: int) -> None:
    """Fail before long work when the disk of `target` cannot hold `needed` bytes."""
    target = Path(target)
    free = shutil.disk_usage(target.parent).free
    if free < needed:
        raise WriteError(
            f"{target}: needs {human_size(needed)} but only {human_size(free)} are free on "
            f"the disk of {target.parent}; free space and run again"
        )
