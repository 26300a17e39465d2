"""The peak FLOP/s a benchmark's measured rate is set against (the machine itself:
imagenette_repro.machine)."""

import os

import torch

# Dense peak TFLOP/s of GPUs this project may meet (SXM parts; NVIDIA's data sheets).
GPU_PEAKS = {"H100": {"fp32": 67.0, "bf16": 989.4, "fp16": 989.4}}
GPU_PEAKS["H200"] = GPU_PEAKS["H100"]


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
