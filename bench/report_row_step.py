"""Whether the report row's training step fits this machine, and how fast it runs: the
images/s of the training step (`train.loop.train_step`, the one `fit` runs) of params.yaml's
network (the report's best row) at one input side and batch size, with params.yaml's
init and optimiser and the precision `runtime.precision: auto` picks, and the peak memory
of the process, for each number of CPU threads.

    python bench/report_row_step.py [--side 224] [--batch 128] [--steps 3] [--threads 1 2]
        [--out FILE]

A measurement, not a test: run it on a quiet machine. Each thread count runs in a process
of its own, so that each peak is its own. Prints one JSON object (and writes it to --out)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path

import torch

from imagenette_repro.files import replacing
from imagenette_repro.machine import machine_info
from imagenette_repro.models.networks import build_custom_network
from imagenette_repro.params import load_params
from imagenette_repro.runtime import Runtime, auto_precision
from imagenette_repro.train.loop import make_optimizer, parameter_groups, train_step
from imagenette_repro.train.settings import custom_training

ROOT = Path(__file__).resolve().parents[1]


def measure(side: int, batch: int, steps: int, threads: int) -> dict:
    """Seconds a step (after one warm-up step) and the peak resident memory, in GiB."""
    torch.set_num_threads(threads)
    params = load_params(ROOT / "params.yaml")
    config = custom_training(params, side)
    runtime = Runtime(precision=auto_precision(torch.device("cpu")))
    torch.manual_seed(0)
    model = build_custom_network(params.layer_list(), side, init=params.train.init)
    model = model.to(memory_format=runtime.memory_format)
    optimizer = make_optimizer(parameter_groups(model, config), config)
    scaler = runtime.grad_scaler(torch.device("cpu"))
    x = torch.rand(batch, 3, side, side).contiguous(memory_format=runtime.memory_format)
    labels = torch.arange(batch) % 10
    model.train()
    train_step(model, optimizer, scaler, x, labels, runtime)  # warm-up: oneDNN's kernel choice
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, scaler, x, labels, runtime)
    seconds = (time.perf_counter() - start) / steps
    return {
        "threads": threads,
        "seconds_per_step": round(seconds, 2),
        "images_per_s": round(batch / seconds, 2),
        "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "precision": runtime.precision,
    }


def _in_own_process(args: tuple) -> dict:
    return measure(*args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    results = []
    for threads in args.threads:
        with context.Pool(1) as pool:
            job = (args.side, args.batch, args.steps, threads)
            results.append(pool.apply(_in_own_process, (job,)))
        print(json.dumps(results[-1]), flush=True)
    record = {
        "network": load_params(ROOT / "params.yaml").network,
        "side": args.side,
        "batch": args.batch,
        "steps_timed": args.steps,
        "results": results,
        "machine": machine_info(),
        "command": "python bench/report_row_step.py "
        f"--side {args.side} --batch {args.batch} --steps {args.steps} "
        f"--threads {' '.join(map(str, args.threads))}",
    }
    text = json.dumps(record, indent=2) + "\n"
    if args.out:
        with replacing(args.out) as tmp:
            tmp.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
