"""Data-parallel training: train_custom in 2 CPU processes (torchrun, gloo) trains the same
model as one process, and writes its outputs once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from imagenette_repro.data.batches import augment
from imagenette_repro.distributed import World, claim_free_slot

from . import faults
from .conftest import ROOT
from .scratch import stage_argv

# No BatchNorm and no dropout: then two processes compute what one does, up to the order
# of floating-point sums (BatchNorm would see each rank's half batch; dropout masks come
# from each rank's own generator).
PLAIN_NETWORK = [
    "ImageInput, 32x32",
    "MaxPool, 2x2",
    "FullyConnected, 64",
    "FullyConnected, 10",
    "SoftMax",
    "ClassOutput, 10",
]


def run_stage(work, stage: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        stage_argv(stage),
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{stage} failed:\n{result.stdout}{result.stderr}"
    return result.stderr


def train(work, processes: int, network: str = "plain") -> tuple[dict, str]:
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["network"] = network
    params["runtime"]["processes"] = processes
    # fp32: under bf16 (runtime.precision auto on a CPU with native bf16) the two ways of
    # summing differ by more than rounding tolerances allow.
    params["runtime"]["precision"] = "fp32"
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for leftover in ("data/checkpoints", "metrics/train_custom"):
        subprocess.run(["rm", "-rf", str(work / leftover)], check=True)
    log = run_stage(work, "train_custom")
    return torch.load(work / "data" / "models" / "custom.pt", weights_only=False), log


@pytest.mark.e2e
def test_two_gloo_processes_train_what_one_process_trains(tmp_path) -> None:
    faults.make_tree(tmp_path / "data" / "raw" / "imagenette")
    faults.tiny_params(
        tmp_path, **{"train.batch_size": 10, "train.max_epochs": 2, "learn_rate": 0.05}
    )
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["architectures"]["plain"] = PLAIN_NETWORK
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stage(tmp_path, "split")
    run_stage(tmp_path, "prepare")

    one, _ = train(tmp_path, 1)
    two, log = train(tmp_path, 2)
    assert "in 2 processes (torchrun)" in log
    assert two["meta"]["epochs_run"] == one["meta"]["epochs_run"] == 2
    assert one["state_dict"].keys() == two["state_dict"].keys()
    for key, value in one["state_dict"].items():
        assert torch.allclose(value, two["state_dict"][key], atol=1e-5, rtol=1e-4), key
    # One writer: the curves hold each epoch once.
    curve = tmp_path / "metrics" / "train_custom" / "plots" / "metrics" / "valid"
    rows = (curve / "accuracy.tsv").read_text().splitlines()
    assert len(rows) == 1 + 2, rows
    summary = json.loads((tmp_path / "metrics" / "train_custom" / "metrics.json").read_text())
    assert summary["epochs_run"] == 2

    # The report's network (BatchNorm, dropout) runs too; each rank normalises its half.
    bn, _ = train(tmp_path, 2, network="network_84_8153")
    assert bn["meta"]["epochs_run"] == 2

    # Rank 0 cannot save the model (a folder stands where it goes): the other rank does
    # not wait for it forever; the run fails, naming the file.
    model = tmp_path / "data" / "models" / "custom.pt"
    model.unlink()
    (model / "in-the-way").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    failed = subprocess.run(
        stage_argv("train_custom"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode != 0
    assert "custom.pt" in failed.stderr


def test_a_rank_warps_its_share_of_the_batch_as_the_whole_batch_would() -> None:
    images = torch.rand(6, 3, 8, 8)

    def warped(rows: slice = slice(None)) -> torch.Tensor:
        draws = torch.Generator().manual_seed(3)
        return augment(images, draws, (0.8, 1.2), 2.0, True, rows)

    whole = warped()
    for rank in range(2):
        world = World(rank, 2)
        assert torch.allclose(warped(world.rows), world.shard(whole))
    assert not torch.allclose(warped(World(0, 2).rows), warped(World(1, 2).rows))


def test_a_world_shards_a_global_batch_without_overlap() -> None:
    batch = torch.arange(10)
    shards = [World(rank, 2).shard(batch) for rank in range(2)]
    assert torch.equal(torch.sort(torch.cat(shards)).values, batch)
    assert torch.equal(World().shard(batch), batch)


def test_parallel_runs_claim_different_gpus_and_a_dead_run_frees_its_own(tmp_path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from imagenette_repro.distributed import claim_free_slot;"
            f"print(claim_free_slot(3, Path({str(tmp_path)!r})), flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert holder.stdout.readline().strip() == "0"
    assert claim_free_slot(3, tmp_path) == 1  # slot 0 is held by the other run
    assert claim_free_slot(3, tmp_path) == 2
    assert claim_free_slot(3, tmp_path) == 0  # all taken: share the first
    holder.kill()
    holder.wait()
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pathlib import Path; from imagenette_repro.distributed import claim_free_slot;"
            f"print(claim_free_slot(3, Path({str(tmp_path)!r})))",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert probe.stdout.strip() == "0"  # freed by the kill; 1 and 2 still held here
