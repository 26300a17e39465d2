"""Data-parallel training under torchrun: NCCL on GPUs, gloo on the CPU.

The semantics stay those of one process: each step takes the same global batch of
`batch_size` images from the same seeded order, augmented the same way; rank r trains on
images r, r + world, ... of it, and DistributedDataParallel averages the gradients, which
is the gradient of the mean loss over the global batch. What differs: BatchNorm sees the
rank's share of the batch (SyncBatchNorm on CUDA restores the global statistics), and
floating-point sums happen in another order."""

from __future__ import annotations

import fcntl
import gc
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, curves and models."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def rows(self) -> slice:
        """This rank's share of a global batch: rows r, r + size, ..."""
        return slice(self.rank, None, self.size)

    def shard(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor[self.rows] if self.distributed else tensor

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of `value` over all ranks (in place; returned for chaining)."""
        if self.distributed:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def totals(self, *values: float | torch.Tensor) -> list[float]:
        """Each value summed over all ranks (one all-reduce)."""
        if not self.distributed:
            return [float(value) for value in values]
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        stacked = torch.tensor([float(value) for value in values], dtype=torch.float64)
        return self.sum(stacked.to(device)).tolist()

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's BatchNorm statistics everywhere (each rank updated its own copy with
        its share of the last batch), so that every rank validates the same model."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The model as trained by this process: DDP around it when distributed."""
        if not self.distributed:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def launched_world() -> World:
    """The World torchrun set up through its environment variables (1 process if none)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def init(device: torch.device) -> World:
    """Join the process group torchrun started (no-op for one process)."""
    world = launched_world()
    if world.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world


def device_for(world: World, device: torch.device) -> torch.device:
    """One GPU per process on CUDA (LOCAL_RANK); the CPU is shared."""
    if device.type == "cuda" and world.distributed:
        torch.cuda.set_device(world.local_rank)
        return torch.device("cuda", world.local_rank)
    return device


FINISHED_KEY = "imagenette-repro/ranks-finished"
_claimed: list = []  # lock files held for the life of the process


def claim_free_slot(count: int, lock_dir: Path | None = None) -> int:
    """The first of `count` slots (GPUs) no other process on this machine holds, held by
    this process until it exits (an flock, so a killed process frees its slot); slot 0
    when all are taken. This is how parallel experiment workers (`dvc queue start -j N`,
    which all see the same GPUs) spread over N GPUs, one each."""
    lock_dir = lock_dir or Path(tempfile.gettempdir())
    for slot in range(count):
        handle = open(lock_dir / f"imagenette-repro-gpu{slot}.lock", "a")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _claimed.append(handle)
        return slot
    return 0


def relaunch(processes: int) -> None:
    """Run the calling script again under torchrun with `processes` workers and exit with
    its status, unless it already runs under torchrun or one process is asked for."""
    if processes <= 1 or "WORLD_SIZE" in os.environ:
        return
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        sys.argv[0],
        *sys.argv[1:],
    ]
    print(f"running {sys.argv[0]} in {processes} processes (torchrun)", file=sys.stderr)
    sys.exit(subprocess.call(command))


def finish(world: World, timeout_s: float = 300.0) -> None:
    """Leave the process group, all ranks together, once every rank is done with it.

    Two races are closed here. DistributedDataParallel's reducer can outlive the training
    loop in a reference cycle, holding the group: freed only at interpreter exit, after
    the group was destroyed, gloo's threads can abort the process ("terminate called
    without an active exception"), so it is collected first. And a rank that destroys its
    gloo context right after a barrier can break a peer still finishing that barrier
    (pytorch/gloo#155), so each rank then also waits, through torchrun's key-value store
    (plain TCP, not gloo), until every rank has left the barrier."""
    if not (world.distributed and dist.is_initialized()):
        return
    gc.collect()
    dist.barrier()
    # torch's own handle on the store (private, long-standing; without it, no wait).
    default_store = getattr(dist.distributed_c10d, "_get_default_store", None)
    if default_store is not None:
        store = default_store()
        store.add(FINISHED_KEY, 1)
        deadline = time.monotonic() + timeout_s
        try:
            while store.add(FINISHED_KEY, 0) < world.size and time.monotonic() < deadline:
                time.sleep(0.01)
        except RuntimeError:  # a store hosted by rank 0 (not torchrun) is gone: all arrived
            pass
    dist.destroy_process_group()
