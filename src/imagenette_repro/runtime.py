"""How the steps run, not what they compute (params.yaml runtime.*): the device, the
precision of autocast, the memory layout, torch's threads and seed. Shared by training,
evaluation and every stage that runs a network."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from . import distributed
from .distributed import claim_free_slot
from .params import Params, ParamsError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """How the step runs, not what it computes (runtime.* in params.yaml, resolved)."""

    channels_last: bool = True  # NHWC memory layout for activations and weights
    precision: str = "fp32"  # fp32 | bf16 | fp16: autocast of the forward pass
    compile: bool = False  # torch.compile the model
    data_on_device: bool | str = "auto"  # CUDA: the image store on the GPU (see batches.place)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device):
        """The forward pass's autocast context (a no-op for fp32)."""
        return torch.autocast(
            device.type,
            dtype=AUTOCAST_DTYPES.get(self.precision, torch.float32),
            enabled=self.precision in AUTOCAST_DTYPES,
        )

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler:
        """fp16 needs loss scaling; for the others the scaler is a pass-through."""
        return torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda when available (with several GPUs, one no other run of this
    project holds, see distributed.claim_free_slot), else cpu."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        count = torch.cuda.device_count()
        if count > 1 and "WORLD_SIZE" not in os.environ:  # torchrun: one GPU per rank
            return torch.device("cuda", claim_free_slot(count))
        return torch.device("cuda")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParamsError(
            f"params.yaml: 'runtime.device' is {name!r} but no CUDA device is "
            "available; use auto or cpu"
        )
    return device


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), as torch's CPU
    feature query reports it. Without it bf16 autocast is emulated: on an AVX2-only EPYC
    the report's best network trained 10.9 img/s in bf16 against 117 img/s in fp32."""
    queries = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in queries)


def auto_precision(device: torch.device) -> str:
    """runtime.precision "auto": bf16 autocast where the hardware has it (a CUDA card that
    supports bf16, a CPU with native bf16), else fp32."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if native_bf16_cpu() else "fp32"
    return "fp32"


def setup_torch(params: Params, training: bool = False) -> torch.device:
    """Seed torch, set CPU threads, pick the device from params. For a `training` stage
    with runtime.processes > 1, the stage script is run again under torchrun, and each
    process joins the process group here (its own GPU on CUDA)."""
    if training:
        distributed.relaunch(params.runtime.processes)
    torch.manual_seed(params.seed)
    if params.runtime.num_threads > 0:
        torch.set_num_threads(params.runtime.num_threads)
    device = pick_device(params.runtime.device)
    device = distributed.device_for(distributed.init(device), device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = params.runtime.cudnn_benchmark
    return device


def runtime_settings(params: Params, device: torch.device) -> Runtime:
    """runtime.* from params for this device; precision "auto" is resolved for the
    hardware at hand (auto_precision)."""
    runtime = params.runtime
    precision = runtime.precision
    if precision == "auto":
        precision = auto_precision(device)
    return Runtime(
        channels_last=runtime.channels_last,
        precision=precision,
        compile=runtime.compile,
        data_on_device=runtime.data_on_device,
    )
