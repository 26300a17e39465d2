"""Download, verify and safely extract an Imagenette archive (stdlib only)."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import UserError
from ..progress import Progress

CHUNK = 1 << 20
TIMEOUT_S = 60.0
URL_SCHEMES = ("http://", "https://", "file://")
OFFLINE_HINT = (
    "Offline? Download the archive elsewhere and set data.archive in params.yaml "
    "to its local path (and data.md5 to its md5)"
)


@dataclass(frozen=True)
class Archive:
    """One of fastai's official Imagenette archives."""

    name: str
    url: str
    md5: str
    bytes: int


# md5 of each whole file as carried by torchvision's datasets/imagenette.py.
KNOWN_ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        Archive(
            "imagenette2",
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz",
            "fe2fc210e6bb7c5664d602c3cd71e612",
            1_557_161_267,
        ),
        Archive(
            "imagenette2-320",
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz",
            "3df6f0d01a2c9592104656642f5e78a3",
            341_663_724,
        ),
        Archive(
            "imagenette2-160",
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
            "e793b78cc4c9e9a4ccc0c1155377a412",
            99_003_388,
        ),
    )
}


class DownloadError(UserError):
    """Any failure to get, verify or extract the dataset archive."""


def _is_url(source: str) -> bool:
    return source.lower().startswith(URL_SCHEMES)


def _normalize_md5(md5: str | None) -> str | None:
    if md5 is None or str(md5).strip() == "":
        return None
    value = str(md5).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{32}", value):
        raise DownloadError(f"md5 {md5!r} is not a 32-digit hex md5")
    return value


def resolve_source(source: str, md5: str | None) -> tuple[str, str | None]:
    """Map a known archive name, a URL or a local path to (url or path, expected md5)."""
    source = str(source).strip()
    md5 = _normalize_md5(md5)
    known = KNOWN_ARCHIVES.get(source)
    if known is not None:
        if md5 is not None and md5 != known.md5:
            raise DownloadError(
                f"md5 {md5} given for {source} differs from its known md5 {known.md5}"
            )
        return known.url, known.md5
    if _is_url(source):
        return source, md5
    if not Path(source).expanduser().is_file():
        names = ", ".join(KNOWN_ARCHIVES)
        raise DownloadError(
            f"archive {source!r} is not a known name, a URL or an existing file "
            f"(allowed: one of {names}; an http://, https:// or file:// URL; "
            f"a path to a local .tgz)"
        )
    return source, md5


def _copy_stream(
    src: BinaryIO, write: Callable[[bytes], object], progress: Progress
) -> tuple[str, int]:
    digest = hashlib.md5()
    size = 0
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        write(chunk)
        size += len(chunk)
        progress.update(len(chunk))
    progress.finish()
    return digest.hexdigest(), size


def _url_name(url: str) -> str:
    return PurePosixPath(urllib.parse.urlparse(url).path).name or "archive.tgz"


def fetch(source: str, dest: Path) -> str:
    """Stream a URL or local file to `dest` (atomically) and return its md5 hex."""
    dest = Path(dest)
    if source in KNOWN_ARCHIVES:
        source = KNOWN_ARCHIVES[source].url
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:

            def write(chunk: bytes) -> None:
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DownloadError(f"could not write {dest}: {exc}") from exc

            if _is_url(source):
                md5 = _fetch_url(source, write)
            else:
                md5 = _fetch_path(Path(source).expanduser(), write)
        os.replace(tmp, dest)
    except OSError as exc:
        raise DownloadError(f"could not write {dest}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return md5


def _known_size(url: str) -> int | None:
    for a in KNOWN_ARCHIVES.values():
        if a.url == url:
            return a.bytes
    return None


def _fetch_url(url: str, write: Callable[[bytes], object]) -> str:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else _known_size(url)
            progress = Progress(f"downloading {_url_name(url)}", total, "bytes")
            md5, size = _copy_stream(resp, write, progress)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"could not download {url}: HTTP {exc.code} {exc.reason}. {OFFLINE_HINT}"
        ) from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"could not download {url}: {exc.reason}. {OFFLINE_HINT}") from exc
    except (OSError, http.client.HTTPException) as exc:
        # Timeouts, resets and TLS errors while reading the body.
        reason = str(exc) or type(exc).__name__
        raise DownloadError(f"could not download {url}: {reason}. {OFFLINE_HINT}") from exc
    if length and length.isdigit() and size != int(length):
        raise DownloadError(
            f"could not download {url}: connection closed after {size} of {length} bytes. "
            f"{OFFLINE_HINT}"
        )
    return md5


def _fetch_path(path: Path, write: Callable[[bytes], object]) -> str:
    try:
        with path.open("rb") as src:
            progress = Progress(f"copying {path.name}", path.stat().st_size, "bytes")
            md5, _ = _copy_stream(src, write, progress)
    except OSError as exc:
        raise DownloadError(f"could not read {path}: {exc.strerror or exc}") from exc
    return md5


def file_md5(path: Path) -> str:
    """md5 hex of a local file, with a progress line."""
    path = Path(path)
    try:
        with path.open("rb") as src:
            progress = Progress(f"checking {path.name}", path.stat().st_size, "bytes")
            md5, _ = _copy_stream(src, lambda _chunk: None, progress)
    except OSError as exc:
        raise DownloadError(f"could not read {path}: {exc.strerror or exc}") from exc
    return md5


def verify_md5(path: Path, expected: str, actual: str | None = None, delete: bool = True) -> str:
    """Check `path` against `expected` (md5 hex) and return the md5.

    On mismatch the file is deleted (unless `delete` is False) and DownloadError raised.
    """
    path = Path(path)
    expected_n = _normalize_md5(expected)
    actual = actual or file_md5(path)
    if actual != expected_n:
        what = "file deleted" if delete else "file kept"
        if delete:
            path.unlink(missing_ok=True)
        raise DownloadError(
            f"md5 mismatch for {path}: expected {expected_n}, got {actual} "
            f"({what}; corrupt or wrong archive, or wrong data.md5)"
        )
    return actual


def _member_filter(archive: Path) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo]:
    """tarfile's "data" extraction filter (no special files, nothing outside the folder,
    safe permissions), made stricter for a dataset: no links at all, no absolute names and
    no '..' (the filter would strip or resolve them). Each refusal is a DownloadError that
    names the archive and the member."""

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        name = member.name
        where = f"refusing to extract {archive}: member {name!r}"
        if member.issym() or member.islnk():
            kind = "symbolic" if member.issym() else "hard"
            raise DownloadError(f"{where} is a {kind} link (to {member.linkname!r})")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise DownloadError(f"{where} has an absolute path")
        if ".." in PurePosixPath(name.replace("\\", "/")).parts:
            raise DownloadError(f"{where} contains '..'")
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.SpecialFileError:
            raise DownloadError(f"{where} is a device, fifo or other special file") from None
        except tarfile.FilterError as err:
            raise DownloadError(f"{where}: {err}") from None

    return check


def _extract_all(archive: Path, root: Path) -> None:
    try:
        tar = tarfile.open(archive, "r:*")
    except tarfile.ReadError as exc:
        raise DownloadError(f"{archive} is not a tar archive ({exc})") from exc
    except OSError as exc:
        raise DownloadError(f"could not extract {archive}: {exc}") from exc
    check = _member_filter(archive)
    with tar:
        try:
            # Iterating reads the archive once; each member is checked before it is written.
            progress = Progress(f"extracting {archive.name}", None, "files")
            for member in tar:
                tar.extract(member, root, filter=check)
                progress.update(member.isfile())
            progress.finish()
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise DownloadError(f"{archive} is corrupt or truncated ({exc})") from exc
        except OSError as exc:
            raise DownloadError(f"could not extract {archive}: {exc}") from exc


def _is_split_dir(path: Path) -> bool:
    return (path / "train").is_dir() and (path / "val").is_dir()


def _find_root(archive: Path, extracted: Path) -> Path:
    """The single top-level folder (or the top itself) holding train/ and val/."""
    if _is_split_dir(extracted):
        return extracted
    top_dirs = sorted(p for p in extracted.iterdir() if p.is_dir())
    roots = [p for p in top_dirs if _is_split_dir(p)]
    if len(roots) > 1:
        names = ", ".join(p.name for p in roots)
        raise DownloadError(f"{archive} holds several dataset folders ({names}); expected one")
    if roots:
        return roots[0]
    if len(top_dirs) == 1:
        top = top_dirs[0]
        missing = [s + "/" for s in ("train", "val") if not (top / s).is_dir()]
        raise DownloadError(f"{archive} has no {' or '.join(missing)} in {top.name}/")
    raise DownloadError(f"{archive} holds no folder with train/ and val/")


def _check_splits(archive: Path, root: Path) -> None:
    classes = {}
    for split in ("train", "val"):
        found = {p.name for p in (root / split).iterdir() if p.is_dir()}
        if not found:
            raise DownloadError(f"{archive}: {root.name}/{split}/ has no class folders")
        classes[split] = found
    only_train = sorted(classes["train"] - classes["val"])
    only_val = sorted(classes["val"] - classes["train"])
    if only_train or only_val:
        raise DownloadError(
            f"{archive}: class folders differ between train/ and val/ "
            f"(only in train: {only_train or 'none'}; only in val: {only_val or 'none'})"
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def safe_extract(
    archive: Path, target: Path, check: Callable[[Path], str | None] | None = None
) -> Path:
    """Extract `archive`, refusing unsafe members, and move its dataset folder to `target`.
    `check(folder)` may return a fault of the extracted folder; then nothing is moved."""
    archive, target = Path(archive), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.extract-"))
    try:
        extracted = work / "x"
        extracted.mkdir()
        _extract_all(archive, extracted.resolve())
        root = _find_root(archive, extracted)
        _check_splits(archive, root)
        problem = check(root) if check is not None else None
        if problem:
            raise DownloadError(f"{archive}: {problem}")
        if root != extracted:
            # Keep the archive's other top-level entries (e.g. noisy_imagenette.csv).
            for extra in sorted(extracted.iterdir()):
                if extra != root and not (root / extra.name).exists():
                    os.replace(extra, root / extra.name)
        old = work / "old"
        if target.exists() or target.is_symlink():
            os.replace(target, old)
        try:
            os.replace(root, target)
        except OSError:
            if old.exists() or old.is_symlink():
                os.replace(old, target)
            raise
    except OSError as exc:
        raise DownloadError(f"could not extract {archive} to {target}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def download_dataset(
    source: str,
    md5: str | None,
    target: Path,
    cache_dir: Path | None = None,
    check: Callable[[Path], str | None] | None = None,
) -> dict:
    """Resolve, fetch, verify and extract an archive to `target`; return a summary dict.

    A local path is hashed and extracted in place (not copied). With `cache_dir`, a URL
    is downloaded to cache_dir/<basename> and reused when its md5 matches.
    """
    target = Path(target)
    url, expected = resolve_source(source, md5)
    target.parent.mkdir(parents=True, exist_ok=True)
    work: Path | None = None
    local = not _is_url(url)
    try:
        if local:
            archive = Path(url).expanduser()
            actual = file_md5(archive)
        elif cache_dir is not None:
            archive = Path(cache_dir) / _url_name(url)
            actual = file_md5(archive) if archive.is_file() and expected else None
            if actual is None or actual != expected:
                actual = fetch(url, archive)
            else:
                print(f"using cached {archive} (md5 ok)", file=sys.stderr)
        else:
            work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.fetch-"))
            archive = work / _url_name(url)
            actual = fetch(url, archive)
        if expected:
            verify_md5(archive, expected, actual, delete=not local)
        else:
            print(
                f"warning: no md5 given for {url}; not verified (its md5 is {actual})",
                file=sys.stderr,
            )
        size = archive.stat().st_size
        safe_extract(archive, target, check)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "source": str(source),
        "url": url,
        "md5": actual,
        "md5_verified": expected is not None,
        "bytes": size,
        "train_images": _count_files(target / "train"),
        "val_images": _count_files(target / "val"),
    }


__all__ = [
    "KNOWN_ARCHIVES",
    "Archive",
    "DownloadError",
    "download_dataset",
    "fetch",
    "file_md5",
    "resolve_source",
    "safe_extract",
    "verify_md5",
]
