"""The fault matrix: every bad input, fault and interruption the pipeline promises to handle,
each run for real on tiny data, with what was expected and what happened.

    python -m tests.faults [--only SUBSTRING] [--light] [--out metrics/fault_matrix]

Each light case runs one stage script (as `dvc repro` would) in a scratch folder; the heavy
cases (interruption, determinism) run real `dvc repro` in a scratch git repository. Disk-full
and read-only cases mount a small tmpfs in a private mount namespace (`unshare -rm`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from imagenette_repro.data.classes import WNIDS
from imagenette_repro.experiments.catalogue import apply_overrides, assignments, overrides
from imagenette_repro.files import replacing

from . import scratch

REPO, SAMPLE = scratch.REPO, scratch.SAMPLE
SIZE = 32  # pixels of the tiny images and of the array store
TRAIN_PER_CLASS, VAL_PER_CLASS = 5, 2


@dataclass
class Outcome:
    passed: bool
    observed: str


@dataclass
class Case:
    name: str
    group: str
    expected: str
    check: Callable[[Path], Outcome]
    heavy: bool = False  # runs real dvc in a scratch git repository
    trains: bool = False  # runs a training stage without dvc


@dataclass
class StageRun:
    returncode: int
    stdout: str
    stderr: str
    left: list[str]  # what is left in the watched folder afterwards

    @property
    def error(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.startswith("error:")]
        return lines[0] if lines else (self.stderr.strip().splitlines() or ["(no message)"])[-1]


# --- tiny data --------------------------------------------------------------------------


def write_image(path: Path, seed: int, mode: str = "RGB", fmt: str = "JPEG") -> None:
    rng = np.random.default_rng(seed)
    shape = (SIZE, SIZE, 3) if mode == "RGB" else (SIZE, SIZE)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, fmt)


def make_tree(root: Path, skip: tuple[str, ...] = ()) -> Path:
    """An Imagenette-shaped folder of real JPEGs: root/{train,val}/<wnid>/*.JPEG."""
    seed = 0
    for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        for wnid in WNIDS:
            if wnid in skip:
                continue
            for i in range(count):
                seed += 1
                write_image(root / split / wnid / f"{wnid}_{i}.JPEG", seed)
    return root


def make_archive(path: Path, tree: Path, extra: tuple[tarfile.TarInfo, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname="imagenette2-tiny")
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


def tiny_params(work: Path, **changes: object) -> dict:
    """The repository's params with tiny data settings; dotted keys in `changes`."""
    tiny = {  # the profile tiny on the case's archive, one epoch, batches of 10
        **overrides(["tiny"]),
        "data.input_size": SIZE,
        "data.md5": None,
        "data.archive": str(work / "tiny.tgz"),
        "train.batch_size": 10,
        "train.max_epochs": 1,
        "googlenet.batch_size": 10,
    }
    params = apply_overrides(yaml.safe_load((REPO / "params.yaml").read_text()), assignments(tiny))
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = params
        for parent in parents:
            node = node[parent]
        if value is _DELETE:
            del node[key]
        else:
            node[key] = value
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return params


_DELETE = object()


def run_stage(
    work: Path, stage: str, watch: str, mount: str | None = None, fsize: int | None = None
) -> StageRun:
    """Run stages/<stage>.py in `work`; `mount` (tmpfs options) is mounted on `watch`
    first, in a private mount namespace; `fsize` caps the size of any file written."""
    (work / watch).mkdir(parents=True, exist_ok=True)
    command = scratch.stage_argv(stage)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    if mount:
        script = (
            f'mount -t tmpfs -o {mount} tmpfs {watch} || exit 99; "$@"; rc=$?; '
            f'echo "LEFT:$(ls -A {watch} | tr "\\n" " ")"; exit $rc'
        )
        command = ["unshare", "-rm", "sh", "-c", script, "sh", *command]

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    result = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=600, preexec_fn=limit
    )
    if mount and result.returncode == 99:
        raise RuntimeError(f"cannot mount a tmpfs with unshare -rm: {result.stderr.strip()}")
    stdout, left = result.stdout, []
    if mount:
        stdout, _, listing = stdout.rpartition("LEFT:")
        left = listing.split()
    elif (work / watch).is_dir():
        left = sorted(p.name for p in (work / watch).iterdir())
    return StageRun(result.returncode, stdout, result.stderr, left)


def expect_refusal(run: StageRun, *mentions: str, left_ok: tuple[str, ...] = ()) -> Outcome:
    """Exit code 2, one `error:` line naming every one of `mentions`, nothing left behind."""
    missing = [m for m in mentions if m.lower() not in run.stderr.lower()]
    left = [name for name in run.left if name not in left_ok]
    traceback = "Traceback" in run.stderr
    observed = f"exit {run.returncode}: {_short(run.error)}"
    if left:
        observed += f"; left behind: {', '.join(left)}"
    if missing:
        observed += f"; message lacks {missing}"
    passed = run.returncode == 2 and not missing and not left and not traceback
    return Outcome(passed, observed)


def _short(text: str, width: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# --- archives ---------------------------------------------------------------------------


def archive_case(build: Callable[[Path], Path], *mentions: str, md5: str | None = None):
    def check(work: Path) -> Outcome:
        archive = build(work)
        tiny_params(work, **{"data.archive": str(archive), "data.md5": md5})
        run = run_stage(work, "download", "data/raw")
        outcome = expect_refusal(run, archive.name, *mentions)
        escaped = work / "escape.txt"
        if escaped.exists():
            return Outcome(False, outcome.observed + "; a member escaped to " + str(escaped))
        return outcome

    return check


def good_archive(work: Path, skip: tuple[str, ...] = ()) -> Path:
    return make_archive(work / "tiny.tgz", make_tree(work / "tree", skip))


def truncated(work: Path) -> Path:
    archive = good_archive(work)
    cut = work / "cut.tgz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return cut


def not_a_tar(work: Path) -> Path:
    path = work / "junk.tgz"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    return path


def with_members(*extra: tarfile.TarInfo) -> Callable[[Path], Path]:
    return lambda work: make_archive(work / "tiny.tgz", make_tree(work / "tree"), extra)


def without_split(split: str) -> Callable[[Path], Path]:
    def build(work: Path) -> Path:
        tree = make_tree(work / "tree")
        shutil.rmtree(tree / split)
        return make_archive(work / "tiny.tgz", tree)

    return build


def empty_class(work: Path) -> Path:
    tree = make_tree(work / "tree")
    for image in (tree / "train" / WNIDS[3]).iterdir():
        image.unlink()
    return make_archive(work / "tiny.tgz", tree)


def unknown_class(work: Path) -> Path:
    tree = make_tree(work / "tree")
    for split in ("train", "val"):
        write_image(tree / split / "n99999999" / "x.JPEG", 7)
    return make_archive(work / "tiny.tgz", tree)


# --- images -----------------------------------------------------------------------------

FLAT = (200, 40, 90)  # a flat colour survives JPEG and resizing within a few levels


def flat_image(path: Path, mode: str, fmt: str) -> tuple[int, int, int]:
    """Write a flat image of FLAT in `mode`/`fmt` at `path`; return the RGB it shows."""
    rgb = Image.new("RGB", (SIZE, SIZE), FLAT)
    if mode == "I;16":
        level = 40000  # 16-bit grey: 40000 / 257 = 155.6 in 8 bits
        Image.fromarray(np.full((SIZE, SIZE), level, np.uint16)).save(path, fmt)
        return (156, 156, 156)
    if mode == "L":
        grey = rgb.convert("L")
        grey.save(path, fmt)
        return (grey.getpixel((0, 0)),) * 3
    rgb.convert(mode).save(path, fmt)
    return FLAT


def prepared_pixel(work: Path, name: str) -> tuple[int, ...] | None:
    import pandas as pd

    index = pd.read_csv(work / "data" / "prepared" / "index.csv")
    rows = index.index[index["path"].str.endswith(name)]
    if len(rows) != 1:
        return None
    store = np.load(work / "data" / "prepared" / "images.npy", mmap_mode="r")
    return tuple(int(v) for v in store[rows[0]].reshape(-1, 3).mean(0).round())


def decodes_case(mode: str, fmt: str) -> Callable[[Path], Outcome]:
    """An image in `mode`/`fmt` saved under a .JPEG name decodes to the colour it shows."""

    def check(work: Path) -> Outcome:
        tree = make_tree(work / "data" / "raw" / "imagenette")
        path = tree / "train" / WNIDS[0] / f"{WNIDS[0]}_odd.JPEG"
        expected = flat_image(path, mode, fmt)
        tiny_params(work)
        run = run_stage(work, "prepare", "data/prepared")
        if run.returncode != 0:
            return Outcome(False, f"exit {run.returncode}: {_short(run.error)}")
        pixel = prepared_pixel(work, path.name)
        close = pixel is not None and all(
            abs(a - b) <= 6 for a, b in zip(pixel, expected, strict=True)
        )
        return Outcome(close, f"exit 0, decoded as RGB {pixel} (source shows {expected})")

    return check


def bad_images(work: Path) -> tuple[Path, list[Path]]:
    tree = make_tree(work / "data" / "raw" / "imagenette")
    corrupt = tree / "train" / WNIDS[1] / f"{WNIDS[1]}_corrupt.JPEG"
    good = tree / "train" / WNIDS[1] / f"{WNIDS[1]}_0.JPEG"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tree / "val" / WNIDS[2] / f"{WNIDS[2]}_empty.JPEG"
    empty.write_bytes(b"")
    return tree, [corrupt, empty]


def bad_images_stop(work: Path) -> Outcome:
    _, bad = bad_images(work)
    tiny_params(work)
    run = run_stage(work, "prepare", "data/prepared")
    return expect_refusal(run, *(path.name for path in bad))


def bad_images_skipped(work: Path) -> Outcome:
    tree, bad = bad_images(work)
    tiny_params(work, **{"data.skip_bad_images": True})
    run = run_stage(work, "prepare", "data/prepared")
    if run.returncode != 0:
        return Outcome(False, f"exit {run.returncode}: {_short(run.error)}")
    summary = json.loads((work / "data" / "prepared" / "summary.json").read_text())
    total = sum(1 for p in tree.rglob("*.JPEG"))
    passed = summary["skipped_bad_images"] == len(bad) and summary["images"] == total - len(bad)
    return Outcome(
        passed,
        f"exit 0, skipped_bad_images={summary['skipped_bad_images']}, "
        f"{summary['images']} of {total} images kept",
    )


# --- parameters -------------------------------------------------------------------------


def params_case(changes: dict, *mentions: str) -> Callable[[Path], Outcome]:
    def check(work: Path) -> Outcome:
        good_archive(work)
        tiny_params(work, **changes)
        run = run_stage(work, "download", "data")
        return expect_refusal(run, *mentions)

    return check


# --- resources --------------------------------------------------------------------------


def disk_full_extracting(work: Path) -> Outcome:
    good_archive(work)
    tiny_params(work)
    run = run_stage(work, "download", "data/raw", mount="size=32k")
    return expect_refusal(run, "tiny.tgz", "no space left")


def prepared_tree(work: Path) -> None:
    make_tree(work / "data" / "raw" / "imagenette")
    tiny_params(work)


def disk_full_store(work: Path) -> Outcome:
    prepared_tree(work)
    run = run_stage(work, "prepare", "data/prepared", mount="size=64k")
    return expect_refusal(run, "images.npy", "free")


def file_limit_store(work: Path) -> Outcome:
    prepared_tree(work)
    run = run_stage(work, "prepare", "data/prepared", fsize=64 * 1024)
    return expect_refusal(run, "images.npy", "file size limit")


def read_only_output(work: Path) -> Outcome:
    prepared_tree(work)
    run = run_stage(work, "prepare", "data/prepared", mount="ro,size=1m")
    return expect_refusal(run, "data/prepared", "cannot write")


# --- interruption and determinism (real dvc in a scratch git repository) ---------------


def dvc_project(work: Path, **changes: object) -> tuple[Path, dict]:
    """A scratch copy of the repository set to the embedded sample at 32 px and a few
    epochs, committed; `changes` are more params ("section.key": value)."""
    repo, env = scratch.copy_repository(work)
    scratch.use_tiny_settings(repo, **changes)
    scratch.commit(repo, env, "tiny")
    return repo, env


def dvc(repo: Path, env: dict, *args: str) -> str:
    result = subprocess.run(
        ["dvc", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def sigkill_resume(work: Path) -> Outcome:
    """SIGKILL `dvc repro` mid-training; `dvc repro` again resumes from the checkpoint and
    ends with the very tensors of an uninterrupted run."""
    import torch

    epochs = 5
    repo, env = dvc_project(work, **{"train.batch_size": 10, "train.max_epochs": epochs})
    checkpoint = repo / "data" / "checkpoints" / "train_custom.pt"
    repro = subprocess.Popen(
        ["dvc", "repro", "train_custom"],
        cwd=repo,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and repro.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(repro.pid, signal.SIGKILL)  # dvc and the stage's python, mid-training
    repro.wait()
    if not checkpoint.exists():
        return Outcome(False, "training ended before it could be killed; no checkpoint")
    killed_at = torch.load(checkpoint, weights_only=False)["state"]["epoch"]
    output = dvc(repo, env, "repro", "train_custom")
    resumed_message = f"resuming from data/checkpoints/train_custom.pt after epoch {killed_at}"
    resumed = torch.load(repo / "data" / "models" / "custom.pt", weights_only=False)
    checkpoint.unlink()
    dvc(repo, env, "repro", "-f", "-s", "train_custom")  # the same run, never interrupted
    fresh = torch.load(repo / "data" / "models" / "custom.pt", weights_only=False)
    same = fresh["state_dict"].keys() == resumed["state_dict"].keys() and all(
        torch.equal(value, resumed["state_dict"][key]) for key, value in fresh["state_dict"].items()
    )
    passed = resumed_message in output and same and 1 <= killed_at < epochs
    return Outcome(
        passed,
        f"killed after epoch {killed_at} of {epochs}; resumed: {resumed_message in output}; "
        f"final weights {'identical to' if same else 'DIFFERENT from'} an uninterrupted run",
    )


def other_params_checkpoint(work: Path) -> Outcome:
    """A checkpoint left by a run with other params is not resumed."""
    repo, env = dvc_project(work, **{"train.max_epochs": 2})
    dvc(repo, env, "repro", "train_custom")
    checkpoint = repo / "data" / "checkpoints" / "train_custom.pt"
    import torch

    state = torch.load(checkpoint, weights_only=False)
    state["state"]["finished"] = False  # pretend it was interrupted
    torch.save(state, checkpoint)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["learn_rate"] = params["learn_rate"] * 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = dvc(repo, env, "repro", "train_custom")
    resumed = "resuming from" in output
    return Outcome(not resumed, "resumed it" if resumed else "started afresh (not resumed)")


# --- a kill or a full disk while a checkpoint is saved ---------------------------------

CHECKPOINTS = "data/checkpoints"
CHECKPOINT = f"{CHECKPOINTS}/train_custom.pt"
PREVIOUS = f"{CHECKPOINT}.prev"
TEMPORARY = f"{CHECKPOINTS}/.train_custom.pt.tmp"
# DVC holds a lock on a running stage's outputs and dependencies, refusing any other stage
# that writes them: "failed to reproduce 'prepare': '.../data/prepared' is busy, it is being
# blocked by: (PID ...): <the first dvc command>".
DVC_LOCK_MESSAGE = "is busy, it is being blocked by"

# The sitecustomize of the cases' training runs: imported first by every Python that has
# its folder on sys.path, it lets a case land a real SIGKILL at one exact moment of a
# checkpoint save, where a timer would land it anywhere.
SIGKILL_AT_SAVE = '''"""The fault matrix's kill switch (tests/faults.py): FAULT_SIGKILL=<moment>:<n>
SIGKILLs this process at the n-th <moment> of a save of train_custom.pt: write (its temp
file written, before the fsync and the renames), renames (the checkpoint just renamed to
.prev, the temp file not yet renamed) or saved (the save complete)."""

import os
import signal

_moment, _, _count = os.environ.get("FAULT_SIGKILL", "").partition(":")
if _moment:
    _seen = 0
    _fsync, _replace = os.fsync, os.replace

    def _reached(moment):
        global _seen
        if moment == _moment:
            _seen += 1
            if _seen == int(_count):
                os.kill(os.getpid(), signal.SIGKILL)

    def _kill_or_fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == ".train_custom.pt.tmp":
            _reached("write")
        return _fsync(fd)

    def _replace_then_kill(src, dst, **kwargs):
        _replace(src, dst, **kwargs)
        name = os.path.basename(os.fspath(dst))
        if name == "train_custom.pt.prev":
            _reached("renames")
        elif name == "train_custom.pt":
            _reached("saved")

    os.fsync, os.replace = _kill_or_fsync, _replace_then_kill
'''


def install_kill_switch(folder: Path) -> None:
    """SIGKILL_AT_SAVE as the sitecustomize of every Python with `folder` on its path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SIGKILL_AT_SAVE)


def tiny_archive_project(work: Path, epochs: int) -> tuple[Path, dict]:
    """A dvc_project on the tiny archive (50 training images, batches of 10: seconds an
    epoch), training for `epochs`."""
    archive = good_archive(work)
    return dvc_project(
        work,
        **{
            "data.archive": str(archive),
            "data.md5": None,
            "train.batch_size": 10,
            "train.max_epochs": epochs,
        },
    )


def killed_repro(work: Path, epochs: int, kill_at: str) -> tuple[Path, dict, str]:
    """`dvc repro train_custom` in a tiny_archive_project whose training SIGKILLs itself
    at `kill_at` (FAULT_SIGKILL); the project, its env and what the kill left in the
    checkpoint folder."""
    repo, env = tiny_archive_project(work, epochs)
    install_kill_switch(repo / "src")  # the stages' PYTHONPATH=src
    killed = subprocess.run(
        ["dvc", "repro", "train_custom"],
        cwd=repo,
        env={**env, "FAULT_SIGKILL": kill_at},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if killed.returncode == 0:
        raise RuntimeError(f"the training ended without the kill at {kill_at}")
    return repo, env, held(repo / CHECKPOINTS)


def held(folder: Path) -> str:
    """The files in `folder`, each checkpoint with the epoch it holds (?: unreadable)."""
    import torch

    names = []
    for path in sorted(folder.iterdir()):
        try:
            epoch = torch.load(path, map_location="cpu", weights_only=False)["state"]["epoch"]
        except Exception:  # a temp file cut short, a corrupt checkpoint
            epoch = "?"
        names.append(f"{path.name} (epoch {epoch})")
    return ", ".join(names) or "nothing"


def cut_to_half(path: Path) -> None:
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size // 2)


def epochs_run(repo: Path) -> int | None:
    summary = repo / "metrics" / "train_custom" / "metrics.json"
    return json.loads(summary.read_text()).get("epochs_run") if summary.is_file() else None


def repro_again(repo: Path, env: dict, *expected_lines: str, epochs: int) -> Outcome:
    """`dvc repro train_custom` once more: exit 0, each of `expected_lines` in its output,
    no traceback, all `epochs` run and no temp file left among the checkpoints."""
    again = subprocess.run(
        ["dvc", "repro", "train_custom"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = again.stdout + again.stderr
    said = [
        line
        for line in output.splitlines()
        if any(word in line for word in ("resuming", "unreadable", "afresh"))
    ]
    missing = [line for line in expected_lines if line not in output]
    ran = epochs_run(repo)
    temporary = sorted(path.name for path in (repo / CHECKPOINTS).glob(".*"))
    observed = f"dvc repro again: exit {again.returncode}, says: {_short(' / '.join(said), 400)}"
    observed += f"; {ran} of {epochs} epochs run"
    if missing:
        observed += f"; LACKS {missing}"
    if temporary:
        observed += f"; temp files left: {', '.join(temporary)}"
    if "Traceback" in output:
        observed += "; a TRACEBACK"
    passed = (
        again.returncode == 0
        and not missing
        and ran == epochs
        and not temporary
        and "Traceback" not in output
    )
    return Outcome(passed, observed)


def killed_writing_checkpoint(work: Path) -> Outcome:
    """SIGKILL while epoch 2's checkpoint is written (its temp file not yet synced or
    renamed), the temp file then cut to half, as a kill in mid-write leaves it: epoch 1's
    checkpoint beside it is resumed."""
    repo, env, left = killed_repro(work, epochs=2, kill_at="write:2")
    if not (repo / TEMPORARY).is_file():
        return Outcome(False, f"the kill left {left}, no temp file")
    cut_to_half(repo / TEMPORARY)
    outcome = repro_again(repo, env, f"resuming from {CHECKPOINT} after epoch 1", epochs=2)
    return Outcome(
        outcome.passed, f"killed, left {left}; the temp file cut to half; {outcome.observed}"
    )


def killed_between_renames(work: Path) -> Outcome:
    """SIGKILL between the two renames of epoch 2's save: no train_custom.pt, epoch 1's
    in .prev, epoch 2's in the temp file; the .prev is resumed."""
    repo, env, left = killed_repro(work, epochs=2, kill_at="renames:1")
    if {path.name for path in (repo / CHECKPOINTS).iterdir()} != {
        ".train_custom.pt.tmp",
        "train_custom.pt.prev",
    }:
        return Outcome(False, f"the kill left {left}, not the temp file and the .prev alone")
    outcome = repro_again(repo, env, f"resuming from {PREVIOUS} after epoch 1", epochs=2)
    return Outcome(outcome.passed, f"killed, left {left}; {outcome.observed}")


def unreadable(path: str) -> str:
    return f"{path} is unreadable, cut short or corrupt ("


def checkpoint_truncated(work: Path) -> Outcome:
    """Killed after epoch 2's save, then train_custom.pt cut to half: it is named as
    unreadable and the .prev (epoch 1) resumed."""
    repo, env, left = killed_repro(work, epochs=3, kill_at="saved:2")
    cut_to_half(repo / CHECKPOINT)
    outcome = repro_again(
        repo,
        env,
        unreadable(CHECKPOINT),
        "; not resumed from it",
        f"resuming from {PREVIOUS} after epoch 1",
        epochs=3,
    )
    return Outcome(
        outcome.passed, f"killed, left {left}; train_custom.pt cut to half; {outcome.observed}"
    )


def checkpoints_unreadable(work: Path) -> Outcome:
    """Killed after epoch 2's save, then train_custom.pt cut to half and its .prev
    overwritten with noise: both named as unreadable, training starts afresh."""
    repo, env, left = killed_repro(work, epochs=3, kill_at="saved:2")
    cut_to_half(repo / CHECKPOINT)
    previous = repo / PREVIOUS
    previous.write_bytes(np.random.default_rng(0).bytes(previous.stat().st_size))
    outcome = repro_again(
        repo,
        env,
        unreadable(CHECKPOINT),
        unreadable(PREVIOUS),
        "no usable checkpoint; starting afresh from epoch 1",
        epochs=3,
    )
    return Outcome(
        outcome.passed,
        f"killed, left {left}; train_custom.pt cut to half, the .prev noise; {outcome.observed}",
    )


def train_on_tmpfs(
    work: Path, epochs: int, watch: str, mount: str, script: str
) -> dict[str, StageRun]:
    """Run `script` (sh) in a private mount namespace with a tmpfs (`mount` options) on
    `watch`, the tiny data prepared first for train_custom of `epochs`; in it `attempt
    NAME [VAR=value ...]` runs the stage (the kill switch on its path) and records its
    exit code, output and what `watch` holds after it. The tmpfs and its files last until
    the script ends. Returns the attempts by name."""
    make_tree(work / "data" / "raw" / "imagenette")
    tiny_params(work, **{"train.max_epochs": epochs})
    for stage in ("split", "prepare"):
        done = run_stage(work, stage, "data")
        if done.returncode != 0:
            raise RuntimeError(f"{stage} failed: {done.error}")
    (work / watch).mkdir(parents=True, exist_ok=True)
    install_kill_switch(work / "hooks")
    env = {
        **os.environ,
        "PYTHONPATH": f"{work / 'hooks'}{os.pathsep}{REPO / 'src'}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    runs = work / "runs"
    runs.mkdir()
    command = " ".join(shlex.quote(word) for word in scratch.stage_argv("train_custom"))
    prelude = (
        f"mount -t tmpfs -o {mount} tmpfs {watch} || exit 99\n"
        "attempt() {\n"
        "  name=$1; shift\n"
        f'  rc=0; env "$@" {command} > {runs}/$name.out 2> {runs}/$name.err || rc=$?\n'
        f"  echo $rc > {runs}/$name.rc\n"
        f"  ls -A {watch} > {runs}/$name.left\n"
        "}\n"
    )
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-ec", prelude + script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode == 99:
        raise RuntimeError(f"cannot mount a tmpfs with unshare -rm: {done.stderr.strip()}")
    if done.returncode != 0:
        raise RuntimeError(f"the tmpfs script failed: {_short(done.stderr, 300)}")
    return {
        rc.stem: StageRun(
            int(rc.read_text()),
            rc.with_suffix(".out").read_text(),
            rc.with_suffix(".err").read_text(),
            rc.with_suffix(".left").read_text().split(),
        )
        for rc in sorted(runs.glob("*.rc"))
    }


def disk_full_checkpoint(work: Path) -> Outcome:
    """data/checkpoints on a tmpfs: epoch 1's checkpoint saved (the run then killed), the
    disk filled to leave half a checkpoint's room; the same command fails saving epoch 2's,
    naming the file, the full disk and the checkpoint kept; space freed, it resumes."""
    import torch

    script = (
        "attempt killed FAULT_SIGKILL=saved:1\n"
        f"size=$(stat -c %s {CHECKPOINT})\n"
        f"free=$(df -B1 --output=avail {CHECKPOINTS} | tail -n 1)\n"
        f"head -c $((free - size / 2)) /dev/zero > {CHECKPOINTS}/filler\n"
        "attempt full\n"
        f"cp {CHECKPOINT} kept.pt\n"
        f"rm {CHECKPOINTS}/filler\n"
        "attempt freed\n"
    )
    runs = train_on_tmpfs(work, 2, CHECKPOINTS, "size=256m", script)
    full, freed = runs["full"], runs["freed"]
    kept = torch.load(work / "kept.pt", map_location="cpu", weights_only=False)["state"]
    outcome = expect_refusal(
        full,
        CHECKPOINT,
        "no space left",
        f"kept: {CHECKPOINT} (after epoch 1)",
        left_ok=("filler", "train_custom.pt"),
    )
    resumed = f"resuming from {CHECKPOINT} after epoch 1" in freed.stderr
    model = (work / "data" / "models" / "custom.pt").is_file()
    temporary = [name for name in freed.left if name.startswith(".")]
    observed = (
        f"{outcome.observed}; the checkpoint kept holds epoch {kept['epoch']}; space freed: "
        f"exit {freed.returncode}, {'resumed after epoch 1' if resumed else 'NOT resumed'}, "
        f"model {'written' if model else 'MISSING'}, left {', '.join(freed.left)}"
    )
    passed = (
        outcome.passed
        and kept["epoch"] == 1
        and not kept["finished"]
        and freed.returncode == 0
        and resumed
        and model
        and not temporary
        and "Traceback" not in freed.stderr
    )
    return Outcome(passed, observed)


def disk_full_model(work: Path) -> Outcome:
    """data/models on a full tmpfs when training ends: the model is not written, one line
    names it and the full disk, nothing half-written is left; space freed, the same
    command writes it from the finished checkpoint, without training again."""
    import torch

    models = "data/models"
    script = (
        f"head -c 64m /dev/zero > {models}/filler 2> /dev/null || true\n"
        "attempt full\n"
        f"rm {models}/filler\n"
        "attempt freed\n"
        f"cp {models}/custom.pt written.pt || true\n"
    )
    runs = train_on_tmpfs(work, 1, models, "size=48m", script)
    full, freed = runs["full"], runs["freed"]
    outcome = expect_refusal(full, f"{models}/custom.pt", "no space left", left_ok=("filler",))
    try:
        written = "state_dict" in torch.load(work / "written.pt", weights_only=False)
    except Exception:  # not written, or not whole
        written = False
    kept = "holds this run finished after epoch 1" in freed.stderr  # not trained again
    observed = (
        f"{outcome.observed}; space freed: exit {freed.returncode}, "
        f"{'the finished checkpoint kept' if kept else 'TRAINED AGAIN'}, model "
        f"{'written' if written else 'MISSING or unreadable'}, left {', '.join(freed.left)}"
    )
    passed = (
        outcome.passed
        and freed.returncode == 0
        and kept
        and written
        and freed.left == ["custom.pt"]
    )
    return Outcome(passed, observed)


def second_exp_run(work: Path) -> Outcome:
    """A second `dvc exp run` in the workspace while the first trains (the first paused
    once its epoch 1 is saved, so that it holds DVC's locks however fast the machine): DVC
    refuses the second at once; the first, let go on, finishes its stages (DVC then fails
    it for want of its experiment record), and the same command again records it as the
    one experiment without training anything again."""
    epochs = 3
    repo, env = tiny_archive_project(work, epochs)
    command = ["dvc", "exp", "run"]
    with open(work / "first.log", "w") as log:
        first = subprocess.Popen(
            command, cwd=repo, env=env, start_new_session=True, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 900
        while not (repo / CHECKPOINT).exists() and first.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the first run saved no checkpoint in 900 s")
            time.sleep(0.05)
        if first.poll() is not None:
            log_text = (work / "first.log").read_text()
            return Outcome(False, f"the first run ended before training: {_short(log_text, 300)}")
        os.killpg(first.pid, signal.SIGSTOP)
        began = time.monotonic()
        second = subprocess.run(
            command, cwd=repo, env=env, capture_output=True, text=True, timeout=600
        )
        seconds = time.monotonic() - began
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGCONT)
    first_code = first.wait(timeout=900)
    refusal = (second.stdout + second.stderr).strip()
    lock = DVC_LOCK_MESSAGE in refusal
    ran = epochs_run(repo)
    # DVC's refusal of the second run costs the first its experiment record (it ends with
    # an error after its stages finished): the same command again records it, training
    # nothing, as every stage's outputs are in place.
    again = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    retrained = "epoch 1/" in again.stdout + again.stderr
    experiments = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    experiments = [ref for ref in experiments if "stash" not in ref and "/exec/" not in ref]
    evaluated = (repo / METRICS[0]).is_file()
    observed = (
        f"second: exit {second.returncode} after {seconds:.0f} s: {_short(refusal, 200)}; "
        f"first: exit {first_code}, {ran} of {epochs} epochs run, evaluation "
        f"{'written' if evaluated else 'MISSING'}; the same command again: exit "
        f"{again.returncode}, {'TRAINED AGAIN' if retrained else 'nothing trained'}, "
        f"{len(experiments)} experiment(s) recorded"
    )
    passed = (
        second.returncode != 0
        and lock
        and seconds < 120
        and ran == epochs
        and evaluated
        and again.returncode == 0
        and not retrained
        and len(experiments) == 1
    )
    return Outcome(passed, observed)


METRICS = ("metrics/evaluation.json", "metrics/per_class.json")
SPLIT = "data/split/index.csv"


def seeds(work: Path) -> Outcome:
    """`dvc repro -f` with the same seed gives byte-identical metrics; another seed gives
    another split (protocol train_split: under the report's the seed moves no image) and
    other metrics."""
    repo, env = dvc_project(work, **{"data.protocol": "train_split"})
    dvc(repo, env, "repro", "evaluate")
    first = {name: (repo / name).read_bytes() for name in (*METRICS, SPLIT)}
    # Every stage again, from the download on; without the finished checkpoint, which a
    # forced run with the same parameters would otherwise keep rather than train again.
    shutil.rmtree(repo / "data" / "checkpoints")
    dvc(repo, env, "repro", "-f", "evaluate")
    differ = [name for name in first if (repo / name).read_bytes() != first[name]]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["seed"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(repo, env, "repro", "evaluate")
    new_split = (repo / SPLIT).read_bytes() != first[SPLIT]
    new_metrics = (repo / METRICS[0]).read_bytes() != first[METRICS[0]]
    same = "byte-identical" if not differ else f"DIFFERENT ({', '.join(differ)})"
    return Outcome(
        not differ and new_split and new_metrics,
        f"same seed: metrics and split {same}; seed + 1: split "
        f"{'differs' if new_split else 'SAME'}, metrics {'differ' if new_metrics else 'SAME'}",
    )


def queued_code(work: Path) -> Outcome:
    """An experiment queued, then the workspace's code edited (a line that stops any run
    importing it), then the queue started: the run uses the queued copy's code, the code
    whose md5 its lock records."""
    from imagenette_repro.stage_io import file_hash

    edited = "src/imagenette_repro/errors.py"  # imported by every stage
    repo, env = dvc_project(work, **{"train.max_epochs": 1})
    dvc(repo, env, "exp", "run", "--queue", "-n", "queued", "-S", "optimizer=adam")
    committed = file_hash(repo / edited, "md5")
    with open(repo / edited, "a") as file:
        file.write('\nraise SystemExit("the workspace code ran")\n')
    dvc(repo, env, "queue", "start", "-j", "1")
    logs = dvc(repo, env, "queue", "logs", "--follow", "queued")
    succeeded = "Success" in dvc(repo, env, "queue", "status")
    shown = json.loads(
        subprocess.run(
            ["dvc", "exp", "show", "--json"], cwd=repo, env=env, capture_output=True, text=True
        ).stdout
        or "[]"
    )
    revs = [
        rev["rev"]
        for commit in shown
        for experiment in commit.get("experiments") or []
        for rev in experiment["revs"]
        if rev.get("name") == "queued"
    ]
    if not succeeded or not revs:
        return Outcome(False, f"the queued run did not succeed: {_short(logs, 300)}")
    lock = subprocess.run(
        ["git", "show", f"{revs[0]}:dvc.lock"], cwd=repo, capture_output=True, text=True
    ).stdout
    recorded = {
        dep["md5"]
        for stage in yaml.safe_load(lock)["stages"].values()
        for dep in stage["deps"]
        if dep["path"] == edited
    }
    workspace_ran = "the workspace code ran" in logs
    passed = recorded == {committed} and not workspace_ran
    return Outcome(
        passed,
        f"queued run succeeded; its lock's {Path(edited).name} md5 "
        f"{'= the committed file' if recorded == {committed} else 'DIFFERS from the committed'}"
        f"; the workspace's edit {'RAN' if workspace_ran else 'did not run'}",
    )


def precision_choice(work: Path) -> Outcome:
    """runtime.precision auto, train_custom run as on a CPU without native bf16 and as on
    one with it (torch's CPU feature queries answered so): fp32, then bf16, recorded."""
    import torch

    prepared_tree(work)
    for stage in ("split", "prepare"):
        done = run_stage(work, stage, "data")
        if done.returncode != 0:
            return Outcome(False, f"{stage} failed: {done.error}")
    argv = scratch.stage_argv("train_custom")
    script = argv[1]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    chosen = {}
    for native in (False, True):
        code = (
            "import runpy, sys, torch\n"
            f"torch.cpu._is_avx512_bf16_supported = lambda: {native}\n"
            f"torch.cpu._is_amx_tile_supported = lambda: {native}\n"
            f"sys.argv = {argv[1:]!r}\n"
            f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            return Outcome(False, f"train_custom failed: {_short(done.stderr, 300)}")
        model = torch.load(work / "data" / "models" / "custom.pt", weights_only=False)
        chosen[native] = model["meta"]["precision"]
        shutil.rmtree(work / "data" / "checkpoints", ignore_errors=True)
    passed = chosen == {False: "fp32", True: "bf16"}
    return Outcome(
        passed,
        f"without native bf16: {chosen[False]}; with it: {chosen[True]} (in the model's record)",
    )


# --- the matrix -------------------------------------------------------------------------


def refused(what: str, where: str) -> str:
    return f"exit 2, one line naming {what}; nothing left in {where}"


RAW, PREPARED = "data/raw", "data/prepared"
SYMLINK = member("imagenette2-tiny/ln", tarfile.SYMTYPE, "/etc/passwd")
ESCAPE = member("imagenette2-tiny/../../escape.txt")

CASES = [
    Case("archive truncated", "archive", refused("the archive, 'truncated'", RAW),
         archive_case(truncated, "truncated")),
    Case("archive wrong md5", "archive", refused("the archive, 'md5'", RAW),
         archive_case(good_archive, "md5", md5="0" * 32)),
    Case("archive not a tar", "archive", refused("the file, 'not a tar'", RAW),
         archive_case(not_a_tar, "not a tar")),
    Case("archive member escapes", "archive", refused("the member, '..'", RAW),
         archive_case(with_members(ESCAPE), "escape.txt", "'..'")),
    Case("archive symlink member", "archive", refused("the member, 'link'", RAW),
         archive_case(with_members(SYMLINK), "link")),
    Case("archive without train/", "archive", refused("the archive, 'train/'", RAW),
         archive_case(without_split("train"), "train/")),
    Case("archive without val/", "archive", refused("the archive, 'val/'", RAW),
         archive_case(without_split("val"), "val/")),
    Case("archive class folder missing", "archive", refused("the class, 'missing'", RAW),
         archive_case(lambda work: good_archive(work, skip=(WNIDS[5],)), WNIDS[5], "missing")),
    Case("archive class folder empty", "archive", refused("the class, 'no images'", RAW),
         archive_case(empty_class, WNIDS[3], "no images")),
    Case("archive unknown class folder", "archive", refused("the folder, 'unknown'", RAW),
         archive_case(unknown_class, "n99999999", "unknown")),
    Case("corrupt and zero-byte JPEGs", "images", refused("every bad file", PREPARED),
         bad_images_stop),
    Case("bad images with data.skip_bad_images", "images",
         "exit 0, both skipped, skipped_bad_images = 2 in the metrics", bad_images_skipped),
    Case("PNG named .JPEG", "images", "decoded to its colour", decodes_case("RGB", "PNG")),
    Case("CMYK JPEG", "images", "decoded to its colour", decodes_case("CMYK", "JPEG")),
    Case("16-bit grey PNG named .JPEG", "images", "decoded, scaled to 8 bits",
         decodes_case("I;16", "PNG")),
    Case("grayscale JPEG", "images", "decoded to grey RGB", decodes_case("L", "JPEG")),
    Case("RGBA PNG named .JPEG", "images", "decoded to its colour", decodes_case("RGBA", "PNG")),
    Case("params: typo in a key", "params", refused("the key", "data"),
         params_case({"learn_rte": 0.01}, "learn_rte")),
    Case("params: missing key", "params", refused("the key", "data"),
         params_case({"patience": _DELETE}, "patience")),
    Case("params: wrong type", "params", refused("the key and type", "data"),
         params_case({"learn_rate": "fast"}, "learn_rate")),
    Case("params: out of range", "params", refused("the key and range", "data"),
         params_case({"data.val_fraction": 1.5}, "data.val_fraction")),
    Case("params: value not allowed", "params", refused("the key and choices", "data"),
         params_case({"optimizer": "rmsprop"}, "optimizer", "sgdm")),
    Case("params: layers too deep for input size", "params",
         refused("the network and input size", "data"),
         params_case({"data.input_size": 8}, "network_84_8153", "input size 8")),
    Case("disk full while extracting", "resources", refused("the archive, 'no space'", RAW),
         disk_full_extracting),
    Case("disk too small for the array store", "resources",
         refused("images.npy and the free space", PREPARED), disk_full_store),
    Case("file size limit hit writing the store", "resources",
         refused("images.npy, 'file size limit'", PREPARED), file_limit_store),
    Case("read-only output folder", "resources", refused("the folder, 'cannot write'", PREPARED),
         read_only_output),
    Case("disk full while a checkpoint is saved", "resources",
         "exit 2, one line naming the checkpoint, 'no space left' and the one kept (epoch 1, "
         "intact); no temp file; space freed, the same command resumes and finishes",
         disk_full_checkpoint, trains=True),
    Case("disk full while the model is saved", "resources",
         "exit 2, one line naming custom.pt and 'no space left'; nothing left in data/models; "
         "space freed, the same command writes it from the finished checkpoint, not training "
         "again", disk_full_model, trains=True),
    Case("SIGKILL mid-training, dvc repro again", "interruption",
         "resumes after the last epoch; final weights identical to an uninterrupted run",
         sigkill_resume, heavy=True),
    Case("checkpoint from other params", "interruption", "not resumed; training starts afresh",
         other_params_checkpoint, heavy=True),
    Case("SIGKILL while a checkpoint is written", "interruption",
         "the half-written temp file ignored; dvc repro resumes from train_custom.pt after "
         "epoch 1 and finishes, no temp file left", killed_writing_checkpoint, heavy=True),
    Case("SIGKILL between a checkpoint's two renames", "interruption",
         "no train_custom.pt, .prev and temp file left; dvc repro resumes from the .prev after "
         "epoch 1 and finishes, no temp file left", killed_between_renames, heavy=True),
    Case("checkpoint cut short", "interruption",
         "named: unreadable, cut short or corrupt, not resumed from; the .prev resumed after "
         "epoch 1; exit 0, no traceback", checkpoint_truncated, heavy=True),
    Case("checkpoint and .prev both unreadable", "interruption",
         "both named as unreadable; no usable checkpoint, training starts afresh; exit 0, no "
         "traceback", checkpoints_unreadable, heavy=True),
    Case("second dvc exp run while one trains", "interruption",
         "the second refused at once by DVC's lock (exit non-zero); the first's stages finish, "
         "metrics written; the same command again records the one experiment, training "
         "nothing", second_exp_run, heavy=True),
    Case("precision auto, CPU with and without native bf16", "runtime",
         "fp32 without native bf16, bf16 with it; recorded with the model", precision_choice,
         trains=True),
    Case("workspace code edited after queueing", "provenance",
         "the queued run uses the queued copy's code, whose md5 its lock records",
         queued_code, heavy=True),
    Case("same seed twice, then seed + 1", "determinism",
         "same seed: byte-identical metrics; other seed (protocol train_split): other split "
         "and metrics", seeds,
         heavy=True),
]  # fmt: skip


def run_case(case: Case) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="fault-") as folder:
        try:
            outcome = case.check(Path(folder))
        except Exception as err:  # a crash of the harness is a failed case, with its reason
            outcome = Outcome(False, f"harness error: {_short(str(err), 300)}")
    return Outcome(outcome.passed, outcome.observed.replace(folder, "<scratch>"))


def markdown(rows: list[dict]) -> str:
    lines = ["| case | group | expected | observed | pass |", "|---|---|---|---|---|"]
    for row in rows:
        cells = [row["case"], row["group"], row["expected"], row["observed"], row["pass"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--light", action="store_true", help="skip the dvc (heavy) cases")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    cases = [
        case
        for case in CASES
        if (not args.only or args.only.lower() in case.name.lower())
        and not (args.light and case.heavy)
    ]
    rows, start = [], time.monotonic()
    for number, case in enumerate(cases, 1):
        began = time.monotonic()
        outcome = run_case(case)
        rows.append(
            {
                "case": case.name,
                "group": case.group,
                "expected": case.expected,
                "observed": outcome.observed,
                "pass": "yes" if outcome.passed else "NO",
                "seconds": round(time.monotonic() - began, 1),
            }
        )
        print(
            f"[{number}/{len(cases)}] {'pass' if outcome.passed else 'FAIL'} {case.name}: "
            f"{outcome.observed} ({rows[-1]['seconds']} s)",
            flush=True,
        )
    table = markdown(rows)
    failed = sum(row["pass"] != "yes" for row in rows)
    print("\n" + table + f"\n{len(rows) - failed} of {len(rows)} cases pass "
          f"({time.monotonic() - start:.0f} s)")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with replacing(args.out.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(rows, indent=2) + "\n")
        with replacing(args.out.with_suffix(".md")) as tmp:
            tmp.write_text(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
