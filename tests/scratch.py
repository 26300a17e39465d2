"""Scratch copies of this repository for the tests' real `dvc` runs (experiments.scratch_copy)
set to the profile `tiny` of experiments.yaml: a run of seconds on the embedded sample."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import yaml

from imagenette_repro.experiments.catalogue import (
    ROOT,
    apply_overrides,
    assignments,
    commit,
    overrides,
    scratch_copy,
    write_params,
)

REPO = ROOT
SAMPLE = REPO / "sample" / "imagenette2-sample.tgz"
copy_repository = scratch_copy
__all__ = ["REPO", "SAMPLE", "apply_overrides", "commit", "copy_repository", "stage_argv"]


def sample_overrides() -> list[str]:
    """The `-S key=value` settings of `make sample` (the profile `sample`)."""
    return assignments(overrides(["sample"]))


def use_tiny_settings(
    repo: Path,
    archive: str | Path | None = None,
    *,
    googlenet_weights: str | None = None,
    md5: str | None = "sample",
    batch_size: int | None = None,
    epochs: int | None = None,
    init: str | None = None,
    **changes: object,
) -> dict:
    """params.yaml of `repo` set to the profile `tiny` (the embedded sample at 32 px, a few
    epochs), then: another `archive` (md5 "sample": the sample's checksum, else `md5`),
    `googlenet_weights`, `batch_size` (both networks), `epochs` (the custom network's),
    `init` and `changes` (more params, "section.key": value). Returns the params. The
    profile sets every key `make sample` sets, so the result is the same whether or not
    the working tree holds the sample's experiment."""
    values = overrides(["tiny"])
    if archive is not None:
        values["data.archive"] = str(archive)
    if md5 != "sample":
        values["data.md5"] = md5
    if googlenet_weights is not None:
        values["googlenet.weights"] = googlenet_weights
    if batch_size is not None:
        values.update({"train.batch_size": batch_size, "googlenet.batch_size": batch_size})
    if epochs is not None:
        values["train.max_epochs"] = epochs
    if init is not None:
        values["train.init"] = init
    values.update(changes)
    return write_params(repo, values)


def stage_argv(stage: str, root: Path = REPO) -> list[str]:
    """A stage's command as dvc.yaml's `cmd` gives it (its script from `root`, run by this
    Python; `export@custom` for one of a foreach stage), to run it outside DVC."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    name, _, item = stage.partition("@")
    entry = stages[name]
    command = entry["do"]["cmd"].replace("${item}", item) if item else entry["cmd"]
    words = [word for word in shlex.split(command) if not word.startswith("PYTHONPATH=")]
    assert words[0] == "python" and words[1].startswith("stages/"), command
    return [sys.executable, str(root / words[1]), *words[2:]]
