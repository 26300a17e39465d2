"""What machine a benchmark ran on, and the peak FLOP/s its measured rate is set against."""

import os
import platform
from pathlib import Path

import torch

# Dense peak TFLOP/s of GPUs this project may meet (SXM parts; NVIDIA's data sheets).
GPU_PEAKS = {"H100": {"fp32": 67.0, "bf16": 989.4, "fp16": 989.4}}
GPU_PEAKS["H200"] = GPU_PEAKS["H100"]


def cpu_model() -> str:
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name", platform.processor())
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def machine_info(device: torch.device) -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    flags = cpu_flags()
    info = {
        "cpu": cpu_model(),
        "cpu_cores": cores,
        "cpu_simd": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags],
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def assumed_peak(args, device: torch.device, precision: str) -> dict:
    """The peak the achieved GFLOP/s are compared with, and how it was had."""
    if args.peak_gflops:
        return {"gflops": args.peak_gflops, "how": "given with --peak-gflops"}
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peaks in GPU_PEAKS.items():
            if key in name:
                return {
                    "gflops": peaks[precision] * 1000,
                    "how": f"{name}: {peaks[precision]:g} TFLOP/s dense {precision} "
                    "(data sheet, SXM)",
                }
        return {"gflops": None, "how": f"{name}: unknown; give --peak-gflops"}
    cores = args.cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    gflops = cores * args.flops_per_cycle * args.ghz
    return {
        "gflops": gflops,
        "how": f"{cores} cores x {args.flops_per_cycle:g} FP32 FLOP/cycle (2 FMA pipes x 8 "
        f"floats x 2) x {args.ghz:g} GHz = {gflops:.1f} GFLOP/s (--cores, --flops-per-cycle, "
        "--ghz or --peak-gflops to change)",
    }
