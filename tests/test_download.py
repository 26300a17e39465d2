"""Tests for imagenette_repro.data.download and the committed sample archive."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagenette_repro.data.download import (
    KNOWN_ARCHIVES,
    DownloadError,
    download_dataset,
    fetch,
    resolve_source,
    safe_extract,
    verify_md5,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample" / "imagenette2-sample.tgz"
SAMPLE_MD5 = REPO / "sample" / "imagenette2-sample.md5"
CLASSES = ("n01440764", "n02102040")
FAKE_JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60 + b"\xff\xd9"


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def add_file(tar: tarfile.TarFile, name: str, data: bytes = FAKE_JPEG) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def make_archive(
    path: Path,
    root: str = "imagenette2-mini",
    splits: tuple[str, ...] = ("train", "val"),
    per_class: int = 3,
    extra: tuple[tarfile.TarInfo, ...] = (),
) -> Path:
    """A tiny fastai-shaped .tgz (root/{train,val}/<wnid>/*.JPEG + noisy_imagenette.csv)."""
    with tarfile.open(path, "w:gz") as tar:
        add_dir(tar, root)
        for split in splits:
            for wnid in CLASSES:
                add_dir(tar, f"{root}/{split}/{wnid}")
                for i in range(per_class):
                    add_file(tar, f"{root}/{split}/{wnid}/{wnid}_{i}.JPEG")
        add_file(tar, f"{root}/noisy_imagenette.csv", b"path,noisy_labels_0\n")
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def layout(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(folder holding the archives, folder the target goes in)."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    return src, out


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def http_root(tmp_path: Path, no_proxy: None) -> Iterator[tuple[str, Path, list[str]]]:
    """A real HTTP server on 127.0.0.1 serving a temp folder: (base url, folder, paths asked)."""
    served = tmp_path / "www"
    served.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served, requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- resolve_source -------------------------------------------------------------------


def test_known_archives_are_the_readme_facts() -> None:
    expected = {
        "imagenette2": (
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz",
            "fe2fc210e6bb7c5664d602c3cd71e612",
            1557161267,
        ),
        "imagenette2-320": (
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz",
            "3df6f0d01a2c9592104656642f5e78a3",
            341663724,
        ),
        "imagenette2-160": (
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
            "e793b78cc4c9e9a4ccc0c1155377a412",
            99003388,
        ),
    }
    assert set(KNOWN_ARCHIVES) == set(expected)
    for name, (url, md5, size) in expected.items():
        assert resolve_source(name, None) == (url, md5)
        archive = KNOWN_ARCHIVES[name]
        assert (archive.name, archive.url, archive.md5, archive.bytes) == (name, url, md5, size)


def test_resolve_url_and_path(tmp_path: Path) -> None:
    url = "https://example.org/a.tgz"
    assert resolve_source(url, None) == (url, None)
    assert resolve_source(url, "A" * 32) == (url, "a" * 32)
    local = tmp_path / "a.tgz"
    local.write_bytes(b"x")
    assert resolve_source(str(local), None) == (str(local), None)


def test_resolve_missing_path_names_it_and_the_choices(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "imagenette.tgz"
    with pytest.raises(DownloadError) as err:
        resolve_source(str(missing), None)
    msg = str(err.value)
    assert str(missing) in msg
    assert "imagenette2-320" in msg and "URL" in msg and "path" in msg


def test_resolve_rejects_bad_or_conflicting_md5() -> None:
    with pytest.raises(DownloadError, match="not a 32-digit hex md5"):
        resolve_source("https://example.org/a.tgz", "abc")
    with pytest.raises(DownloadError, match="differs from its known md5"):
        resolve_source("imagenette2-160", "0" * 32)


# --- md5 ------------------------------------------------------------------------------


def test_md5_mismatch_leaves_nothing(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    archive = make_archive(src / "a.tgz")
    target = out / "imagenette"
    with pytest.raises(DownloadError) as err:
        download_dataset(archive.as_uri(), "0" * 32, target)
    msg = str(err.value)
    assert "0" * 32 in msg and md5_of(archive) in msg and "a.tgz" in msg
    assert list(out.iterdir()) == []  # no target, no temp download, no temp extract dir
    assert archive.exists()


def test_md5_mismatch_of_local_path_keeps_the_users_file(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    archive = make_archive(src / "a.tgz")
    with pytest.raises(DownloadError, match="md5 mismatch"):
        download_dataset(str(archive), "0" * 32, out / "imagenette")
    assert archive.exists()
    assert list(out.iterdir()) == []


def test_verify_md5_deletes_the_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "x.part"
    path.write_bytes(b"hello")
    good = hashlib.md5(b"hello").hexdigest()
    assert verify_md5(path, good.upper()) == good
    with pytest.raises(DownloadError) as err:
        verify_md5(path, "f" * 32)
    assert str(path) in str(err.value) and "f" * 32 in str(err.value) and good in str(err.value)
    assert not path.exists()


# --- safe_extract ---------------------------------------------------------------------


def evil(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (evil("imagenette2-mini/../escape.txt"), "'..'"),
        (evil("../escape.txt"), "'..'"),
        (evil("/tmp/abs-escape.txt"), "absolute"),
        (evil("imagenette2-mini/train/n01440764/ln", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (evil("imagenette2-mini/ln2", tarfile.SYMTYPE, "../../escape.txt"), "link"),
        (evil("imagenette2-mini/hard", tarfile.LNKTYPE, "imagenette2-mini/noisy_imagenette.csv"),
         "link"),
        (evil("imagenette2-mini/dev", tarfile.CHRTYPE), "device"),
        (evil("imagenette2-mini/fifo", tarfile.FIFOTYPE), "fifo"),
    ],
    ids=["dotdot-inside", "dotdot", "absolute", "symlink-abs", "symlink-rel", "hardlink",
         "chardev", "fifo"],
)  # fmt: skip
def test_unsafe_members_rejected(
    dirs: tuple[Path, Path], member: tarfile.TarInfo, reason: str
) -> None:
    src, out = dirs
    archive = make_archive(src / "evil.tgz", extra=(member,))
    target = out / "imagenette"
    with pytest.raises(DownloadError) as err:
        safe_extract(archive, target)
    msg = str(err.value)
    assert member.name in msg and reason in msg and str(archive) in msg
    assert list(out.iterdir()) == []
    assert layout(src) == {"evil.tgz"}
    assert not (src.parent / "escape.txt").exists()
    assert not Path("/tmp/abs-escape.txt").exists()


def test_failure_keeps_an_old_target_intact(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    target = out / "imagenette"
    (target / "train").mkdir(parents=True)
    (target / "train" / "old.txt").write_text("old")
    archive = make_archive(src / "evil.tgz", extra=(evil("../escape.txt"),))
    with pytest.raises(DownloadError):
        safe_extract(archive, target)
    assert layout(target) == {"train", "train/old.txt"}
    assert [p.name for p in out.iterdir()] == ["imagenette"]


def test_not_a_tar_rejected(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    junk = src / "junk.tgz"
    junk.write_bytes(FAKE_JPEG * 100)
    with pytest.raises(DownloadError, match="is not a tar archive") as err:
        safe_extract(junk, out / "imagenette")
    assert str(junk) in str(err.value)
    assert list(out.iterdir()) == []


def test_truncated_archive_rejected(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    archive = make_archive(src / "a.tgz", per_class=50)
    cut = src / "cut.tgz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DownloadError, match="cut.tgz"):
        safe_extract(cut, out / "imagenette")
    assert list(out.iterdir()) == []


def test_missing_val_rejected(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    archive = make_archive(src / "a.tgz", splits=("train",))
    with pytest.raises(DownloadError, match=r"no val/ in imagenette2-mini/"):
        safe_extract(archive, out / "imagenette")
    assert list(out.iterdir()) == []


def test_split_without_class_folders_rejected(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    archive = src / "flat.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "root/train/a.JPEG")
        add_file(tar, "root/val/b.JPEG")
    with pytest.raises(DownloadError, match=r"root/train/ has no class folders"):
        safe_extract(archive, out / "imagenette")
    assert list(out.iterdir()) == []


def test_safe_extract_replaces_old_target_and_keeps_extras(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    target = out / "imagenette"
    target.mkdir()
    (target / "stale.txt").write_text("stale")
    archive = make_archive(src / "a.tgz", per_class=2)
    assert safe_extract(archive, target) == target
    files = {p for p in layout(target) if (target / p).is_file()}
    assert files == {
        "noisy_imagenette.csv",
        *(f"{s}/{w}/{w}_{i}.JPEG" for s in ("train", "val") for w in CLASSES for i in range(2)),
    }
    assert (target / "train" / CLASSES[0] / f"{CLASSES[0]}_0.JPEG").read_bytes() == FAKE_JPEG
    assert [p.name for p in out.iterdir()] == ["imagenette"]


# --- fetch and download over real HTTP ------------------------------------------------


def test_download_over_http(
    http_root: tuple[str, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, served, _ = http_root
    archive = make_archive(served / "x.tgz", per_class=4)
    out = tmp_path / "out"
    info = download_dataset(f"{base}/x.tgz", md5_of(archive), out / "imagenette")
    assert info == {
        "source": f"{base}/x.tgz",
        "url": f"{base}/x.tgz",
        "md5": md5_of(archive),
        "md5_verified": True,
        "bytes": archive.stat().st_size,
        "train_images": 8,
        "val_images": 8,
    }
    assert (out / "imagenette" / "val" / CLASSES[1] / f"{CLASSES[1]}_3.JPEG").is_file()
    assert [p.name for p in out.iterdir()] == ["imagenette"]
    assert "x.tgz" in capsys.readouterr().err  # progress line


def test_download_without_md5_is_unverified(http_root: tuple[str, Path, list[str]], tmp_path: Path):
    base, served, _ = http_root
    archive = make_archive(served / "x.tgz")
    info = download_dataset(f"{base}/x.tgz", None, tmp_path / "imagenette")
    assert info["md5_verified"] is False and info["md5"] == md5_of(archive)


def test_fetch_returns_md5_and_writes_atomically(
    http_root: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base, served, _ = http_root
    data = bytes(range(256)) * 5000
    (served / "blob.bin").write_bytes(data)
    dest = tmp_path / "dl" / "blob.bin"
    assert fetch(f"{base}/blob.bin", dest) == hashlib.md5(data).hexdigest()
    assert dest.read_bytes() == data
    assert [p.name for p in dest.parent.iterdir()] == ["blob.bin"]


def test_cache_dir_skips_second_download(
    http_root: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    base, served, requests = http_root
    archive = make_archive(served / "x.tgz")
    cache = tmp_path / "cache"
    for _ in range(2):
        info = download_dataset(f"{base}/x.tgz", md5_of(archive), tmp_path / "t", cache)
        assert info["md5_verified"] and info["train_images"] == 6
    assert requests == ["/x.tgz"]
    assert md5_of(cache / "x.tgz") == md5_of(archive)


def test_http_404_names_the_url(http_root: tuple[str, Path, list[str]], tmp_path: Path) -> None:
    base, _, _ = http_root
    url = f"{base}/missing.tgz"
    with pytest.raises(DownloadError) as err:
        download_dataset(url, None, tmp_path / "out" / "imagenette")
    assert url in str(err.value) and "404" in str(err.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_refused_connection_gives_offline_hint(tmp_path: Path, no_proxy: None) -> None:
    url = f"http://127.0.0.1:{free_port()}/imagenette2-320.tgz"
    dest = tmp_path / "dl" / "a.tgz"
    with pytest.raises(DownloadError) as err:
        fetch(url, dest)
    msg = str(err.value)
    assert msg.startswith(f"could not download {url}: ")
    assert "Offline?" in msg and "data.archive" in msg and "data.md5" in msg
    assert list(dest.parent.iterdir()) == []


def test_file_url_and_local_path(dirs: tuple[Path, Path]) -> None:
    src, out = dirs
    archive = make_archive(src / "a.tgz")
    by_url = download_dataset(archive.as_uri(), None, out / "u")
    by_path = download_dataset(str(archive), md5_of(archive), out / "p")
    assert by_url["train_images"] == by_path["train_images"] == 6
    assert by_path["md5_verified"] and by_path["url"] == str(archive)
    assert sorted(p.name for p in out.iterdir()) == ["p", "u"]


# --- the committed sample -------------------------------------------------------------


def test_committed_sample_archive() -> None:
    assert SAMPLE.is_file(), "run scripts/make_sample.py"
    assert md5_of(SAMPLE) == SAMPLE_MD5.read_text().split()[0]
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(SAMPLE, "r:gz") as tar:
        for m in tar:
            assert m.isfile() or m.isdir(), m.name
            parts = m.name.split("/")
            assert parts[0] == "imagenette2-sample"
            if not m.isfile():
                continue
            assert len(parts) == 4 and parts[1] in ("train", "val") and parts[3].endswith(".JPEG")
            f = tar.extractfile(m)
            assert f is not None
            data = f.read()
            assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", m.name
            key = (parts[1], parts[2])
            counts[key] = counts.get(key, 0) + 1
    for split, per_class in (("train", 20), ("val", 6)):
        per_split = {w: n for (s, w), n in counts.items() if s == split}
        assert len(per_split) == 10
        assert set(per_split.values()) == {per_class}
    assert {w for s, w in counts if s == "train"} == {w for s, w in counts if s == "val"}


def test_committed_sample_extracts(tmp_path: Path) -> None:
    info = download_dataset(str(SAMPLE), SAMPLE_MD5.read_text().split()[0], tmp_path / "s")
    assert (info["train_images"], info["val_images"], info["md5_verified"]) == (200, 60, True)


def test_committed_sample_images_decode() -> None:
    image = pytest.importorskip("PIL.Image")
    with tarfile.open(SAMPLE, "r:gz") as tar:
        for m in tar:
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                with image.open(f) as img:
                    img.load()
                    assert img.size == (224, 224), m.name
