"""How fast this project trains, against the common way, on this machine.

    python bench/benchmark.py [ARCHIVE] [--sizes 32 64 224] [--quick] [--device cuda] ...

For `network_84_8153` at each size, with the report's augmentation (random x/y scale and
shift), on real JPEGs from ARCHIVE (default: the embedded sample; images are repeated when
the archive has fewer than a run needs):

- project epoch: images/s of one training epoch of `training.fit` over the decoded uint8
  array store (the prepare stage's), augmentation as one batched affine warp per batch;
- plain baseline: images/s of the same training written the common way: torchvision's
  ImageFolder over the JPEGs, PIL transforms (Resize, RandomAffine with the same ranges,
  ToTensor), a DataLoader with workers, a plain fp32 step in the default memory layout;
- bare step: images/s of `training.train_step` alone on one batch already on the device,
  its FLOPs (forward + backward, counted by torch's FlopCounterMode) and the achieved
  GFLOP/s as a fraction of the peak assumed for the machine (printed; --peak-gflops);
- DVC: the time of `dvc exp run -S optimizer=adam` after a full `dvc repro`, against the
  time of that repro, in a temporary copy of the repository (tiny settings, 32 px).

Figures go to OUT/benchmark.json and OUT/benchmark.md (default OUT: metrics/).
It is a measurement, not a test: run it on a quiet machine (`make bench`).
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from imagenette_repro.data.batches import ImageSet, augment, mean_image, to_input
from imagenette_repro.data.dataset import list_images, write_array_store
from imagenette_repro.experiments.catalogue import commit, overrides, scratch_copy, write_params
from imagenette_repro.machine import machine_info
from imagenette_repro.models.architecture import parse_layer
from imagenette_repro.models.networks import build_custom_network
from imagenette_repro.params import PRECISIONS, ROW_COLUMNS, Params, load_params
from imagenette_repro.runtime import Runtime, pick_device
from imagenette_repro.train.loop import (
    TrainConfig,
    fit,
    make_optimizer,
    parameter_groups,
    train_step,
)
from imagenette_repro.train.settings import report_row_training

from benchmark_files import markdown, save
from machine import assumed_peak

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample" / "imagenette2-sample.tgz"
REAL_DATA = ("../shared/data/imagenette2-224.tgz", "/work/shared/data/imagenette2-224.tgz")
# Batches per size (project epoch and baseline; bare step) when not given: about a minute
# per measurement on 2 CPU cores.
EPOCH_BATCHES = {32: 30, 64: 20, 224: 3}
STEP_BATCHES = {32: 20, 64: 8, 224: 2}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- data


def extract(archive: Path, into: Path) -> Path:
    """Extract an Imagenette-shaped archive; return the folder holding train/ and val/."""
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    for folder in [into, *sorted(p for p in into.rglob("*") if p.is_dir())]:
        if (folder / "train").is_dir() and (folder / "val").is_dir():
            return folder
    raise SystemExit(f"{archive}: no train/ and val/ folders inside")


def chosen_images(root: Path, count: int, seed: int) -> tuple[list[str], list[int], int]:
    """`count` train-folder images (paths relative to root, labels) in a seeded order,
    repeated when the folder has fewer; and how many are distinct."""
    index = list_images(root)
    index = index[index["folder"] == "train"]
    order = list(range(len(index)))
    random.Random(seed).shuffle(order)
    rows = [order[i % len(order)] for i in range(count)]
    paths = index["path"].to_numpy()
    labels = index["label"].to_numpy()
    return [paths[i] for i in rows], [int(labels[i]) for i in rows], min(count, len(order))


def decode_store(root: Path, paths: list[str], labels: list[int], size: int, tmp: Path):
    """The prepare stage's work on the distinct images (timed), repeated to len(paths)."""
    distinct = list(dict.fromkeys(paths))
    import pandas as pd

    index = pd.DataFrame({"path": distinct})
    start = time.perf_counter()
    write_array_store(root, index, size, tmp / f"store{size}.npy", skip_bad=False)
    seconds = time.perf_counter() - start
    store = torch.from_numpy(np.load(tmp / f"store{size}.npy"))
    where = {path: i for i, path in enumerate(distinct)}
    images = store[torch.tensor([where[p] for p in paths])]
    return ImageSet(images, torch.tensor(labels)), len(distinct) / seconds


def image_folder(root: Path, paths: list[str], labels: list[int], target: Path) -> Path:
    """An ImageFolder tree of exactly these images (symbolic links; repeats renamed)."""
    from imagenette_repro.data.classes import WNIDS

    for i, (path, label) in enumerate(zip(paths, labels, strict=True)):
        link = target / WNIDS[label] / f"{i:06d}_{Path(path).name}"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(root / path)
    return target


# ---------------------------------------------------------------------------- measure


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(params: Params, network: str, size: int) -> nn.Module:
    return build_custom_network(params.layer_list(network), size, 10, params.train.init, network)


def train_config(params: Params, network: str, size: int, batch: int, epochs: int) -> TrainConfig:
    """train_custom's settings for a report row, with augmentation on, no early stopping."""
    row = {key: getattr(params.report_rows[network], key) for key in ROW_COLUMNS}
    return replace(
        report_row_training(params.model_copy(update={**row, "network": network}), size),
        batch_size=batch,
        max_epochs=epochs,
        patience=None,
        augmentation=True,
    )


def warm_up(model: nn.Module, data: ImageSet, config: TrainConfig, device, runtime: Runtime):
    """Two steps on a copy of the model: oneDNN's primitives, cuDNN's algorithm choice and
    the allocators are warm for the timed runs (as they are after an epoch's first step)."""
    model = copy.deepcopy(model).to(device, memory_format=runtime.memory_format)
    optimizer = make_optimizer(parameter_groups(model, config), config)
    scaler = runtime.grad_scaler(device)
    warp = torch.Generator().manual_seed(0)
    for _ in range(2):
        x = to_input(data.images[: config.batch_size], device, runtime.channels_last)
        x = augment(x, warp, config.scale, config.translation, config.reflection)
        train_step(
            model, optimizer, scaler, x, data.labels[: config.batch_size].to(device), runtime
        )
    sync(device)


def project_epoch(params, args, size, data: ImageSet, device, runtime: Runtime) -> dict:
    """One epoch of training.fit over `data` (a tiny validation set), as train_custom runs."""
    torch.manual_seed(params.seed)
    model = build_model(params, args.network, size)
    model[0].mean.copy_(mean_image(data.images))
    epochs = 2 if runtime.compile else 1  # with compile, the first epoch compiles
    config = train_config(params, args.network, size, args.batch_size, epochs)
    if not runtime.compile:
        warm_up(model, data, config, device, runtime)
    valid = ImageSet(data.images[:2], data.labels[:2])
    result = fit(model, data, valid, config, device, label=f"bench {size}px", runtime=runtime)
    return {
        "images_per_s": result.history[-1]["train/images_per_s"],
        "images": len(data) // args.batch_size * args.batch_size,
    }


def bare_step(params, args, size, data: ImageSet, device, runtime: Runtime, batches: int):
    """train_step alone on one batch already on the device (no data work at all)."""
    torch.manual_seed(params.seed)
    model = build_model(params, args.network, size).to(device, memory_format=runtime.memory_format)
    config = train_config(params, args.network, size, args.batch_size, 1)
    optimizer = make_optimizer(parameter_groups(model, config), config)
    scaler = runtime.grad_scaler(device)
    if runtime.compile:
        model.compile()
    model.train()
    x = to_input(data.images[: args.batch_size], device, runtime.channels_last)
    labels = data.labels[: args.batch_size].to(device)
    for _ in range(3 if runtime.compile else 2):
        train_step(model, optimizer, scaler, x, labels, runtime)
    sync(device)
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        train_step(model, optimizer, scaler, x, labels, runtime)
        sync(device)
        times.append(time.perf_counter() - start)
    return {
        "images_per_s": args.batch_size * len(times) / sum(times),
        "best_step_images_per_s": args.batch_size / min(times),
        "steps": len(times),
    }


def count_flops(params, args, size) -> float:
    """FLOPs of one image's training step: forward and backward (FlopCounterMode counts
    the convolutions and matrix products, 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(params, args.network, size)
    x = torch.rand(2, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    return counter.get_total_flops() / 2


def plain_baseline(params, args, size, folder: Path, device, batches: int) -> dict:
    """The common way: ImageFolder + PIL transforms + DataLoader workers + a plain step."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    train = params.train
    report_size = parse_layer(params.layer_list(args.network)[0]).size
    shift = train.translation_px / report_size  # a fraction of the side, at any size
    steps = [
        transforms.Resize((size, size)),
        transforms.RandomAffine(
            degrees=0, translate=(shift, shift), scale=(train.scale_min, train.scale_max)
        ),
    ]
    if train.reflection:
        steps.append(transforms.RandomHorizontalFlip())
    dataset = datasets.ImageFolder(
        folder, transform=transforms.Compose([*steps, transforms.ToTensor()])
    )
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
    )
    torch.manual_seed(params.seed)
    model = build_model(params, args.network, size).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=params.learn_rate,
        momentum=train.momentum,
        weight_decay=train.l2_regularization,
    )
    criterion = nn.CrossEntropyLoss()

    def step(x, y):
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    # Warm the kernels on random data, as the project's epoch is warmed.
    for _ in range(2):
        step(
            torch.rand(args.batch_size, 3, size, size, device=device),
            torch.zeros(args.batch_size, dtype=torch.int64, device=device),
        )
    sync(device)
    model.train()
    seen, start, last = 0, time.perf_counter(), time.perf_counter()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        step(x, y)
        seen += len(y)
        if time.perf_counter() - last > 10:
            last = time.perf_counter()
            log(
                f"  baseline {size}px: {seen}/{batches * args.batch_size} images, "
                f"{seen / (last - start):.1f} img/s"
            )
    sync(device)
    seconds = time.perf_counter() - start
    # The loader alone (decode + transforms in the workers), for the record.
    start, count = time.perf_counter(), 0
    for x, _ in loader:
        count += len(x)
    loader_rate = count / (time.perf_counter() - start)
    return {"images_per_s": seen / seconds, "images": seen, "loader_only_images_per_s": loader_rate}


# --------------------------------------------------------------------------------- dvc


def dvc_timing(archive: Path, args, runtime_params: dict, targets: list[str]) -> dict:
    """Full `dvc repro` in a fresh copy of the repository, then `dvc exp run -S
    optimizer=adam`: the variant re-runs only what depends on the optimizer (train_custom
    and what follows it). `targets` limits both to those stages and their ancestors."""
    dvc = Path(sys.executable).parent / "dvc"
    dvc = str(dvc) if dvc.exists() else shutil.which("dvc")
    if dvc is None:
        return {"skipped": "dvc is not installed"}
    with tempfile.TemporaryDirectory(prefix="bench-dvc-") as tmp:
        repo, env = scratch_copy(Path(tmp), ROOT)

        def run(*command: str) -> tuple[float, str]:
            start = time.perf_counter()
            result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(
                    f"{' '.join(command)} failed in {repo}:\n{result.stdout}{result.stderr}"
                )
            return time.perf_counter() - start, result.stdout + result.stderr

        small = archive.resolve() == SAMPLE.resolve()
        batch = 10 if small else 64
        write_params(  # the tests' tiny profile on `archive`, at these settings
            repo,
            {
                **overrides(["tiny"]),
                "data.archive": str(archive.resolve()),
                "data.md5": None,
                "train.batch_size": batch,
                "googlenet.batch_size": batch,
                "train.max_epochs": args.dvc_epochs,
                **{f"runtime.{key}": value for key, value in runtime_params.items()},
            },
        )
        # A cold start: no lock file of another run (and an experiment of some targets
        # then records only their outputs).
        (repo / "dvc.lock").unlink(missing_ok=True)
        commit(repo, env, "bench")
        log(f"dvc: full repro in {repo} ({archive.name}, 32 px, {args.dvc_epochs} epochs)")
        repro_s, out = run(dvc, "repro", *targets)
        repro_stages = re.findall(r"Running stage '([^']+)'", out)
        log(f"dvc: repro {repro_s:.1f} s ({', '.join(repro_stages)}); now exp run adam")
        exp_s, out = run(dvc, "exp", "run", "-S", "optimizer=adam", *targets)
        exp_stages = re.findall(r"Running stage '([^']+)'", out)
        log(f"dvc: exp run {exp_s:.1f} s ({', '.join(exp_stages)})")
    return {
        "archive": archive.name,
        "settings": f"32 px, batch {batch}, {args.dvc_epochs} epochs, GoogLeNet 1 epoch "
        "random init" + (f"; targets {' '.join(targets)}" if targets else ""),
        "targets": targets,
        "repro_s": repro_s,
        "repro_stages": repro_stages,
        "exp_run_adam_s": exp_s,
        "exp_run_stages": exp_stages,
        "exp_over_repro": exp_s / repro_s,
    }


# -------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "archive", nargs="?", type=Path, help=f"default: {SAMPLE.relative_to(ROOT)}"
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="default: 32 64 224 (quick: 32)")
    parser.add_argument("--network", default="network_84_8153")
    parser.add_argument("--batch-size", type=int, help="default: train.batch_size (quick: 10)")
    parser.add_argument(
        "--batches",
        type=int,
        help=f"batches of the epoch and the baseline (default per size: {EPOCH_BATCHES})",
    )
    parser.add_argument("--step-batches", type=int, help=f"timed bare steps ({STEP_BATCHES})")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count(),
        help="baseline DataLoader workers (default: one per CPU)",
    )
    parser.add_argument("--device", help="default: runtime.device of params.yaml")
    parser.add_argument("--precision", choices=PRECISIONS, help="default: runtime.precision")
    parser.add_argument(
        "--channels-last", choices=("true", "false"), help="default: runtime.channels_last"
    )
    parser.add_argument("--compile", choices=("true", "false"), help="default: runtime.compile")
    parser.add_argument("--threads", type=int, help="default: runtime.num_threads")
    parser.add_argument(
        "--switches",
        action="store_true",
        help="also time the bare step with each runtime switch flipped",
    )
    parser.add_argument("--peak-gflops", type=float, help="the machine's peak, if known")
    parser.add_argument("--cores", type=int, help="CPU peak: cores (default: usable CPUs)")
    parser.add_argument(
        "--flops-per-cycle",
        type=float,
        default=32.0,
        help="CPU peak: FP32 FLOP per cycle per core (Zen 3/4: 32)",
    )
    parser.add_argument("--ghz", type=float, default=2.45, help="CPU peak: clock in GHz")
    parser.add_argument("--no-dvc", action="store_true", help="skip the dvc repro/exp timing")
    parser.add_argument("--dvc-archive", type=Path, help="default: ARCHIVE (quick: the sample)")
    parser.add_argument("--dvc-epochs", type=int, default=2)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of seconds: 32 px, batch 10, few batches, the sample",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "metrics",
        help="folder for benchmark.json and benchmark.md (default: metrics/)",
    )
    return parser.parse_args(argv)


def resolve_runtime(params: Params, args, device: torch.device) -> Runtime:
    settings = params.runtime
    precision = args.precision or settings.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"

    def flag(value, default):
        return default if value is None else value == "true"

    return Runtime(
        channels_last=flag(args.channels_last, settings.channels_last),
        precision=precision,
        compile=flag(args.compile, settings.compile),
        data_on_device=settings.data_on_device,
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    params = load_params(ROOT / "params.yaml")
    if args.quick:
        args.sizes = args.sizes or [32]
        args.batch_size = args.batch_size or 10
        args.batches = args.batches or 3
        args.step_batches = args.step_batches or 2
        args.workers = min(args.workers or 1, 1)
        args.dvc_epochs = 1
    args.sizes = args.sizes or [32, 64, 224]
    args.batch_size = args.batch_size or params.train.batch_size
    archive = args.archive or SAMPLE
    if not archive.is_file():
        raise SystemExit(f"{archive}: no such archive")
    threads = args.threads if args.threads is not None else params.runtime.num_threads
    if threads > 0:
        torch.set_num_threads(threads)
    device = pick_device(args.device or params.runtime.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = params.runtime.cudnn_benchmark
    runtime = resolve_runtime(params, args, device)
    started = time.perf_counter()
    report = {
        "network": args.network,
        "batch_size": args.batch_size,
        "archive": archive.name,
        "machine": machine_info(device),
        "runtime": {
            "channels_last": runtime.channels_last,
            "precision": runtime.precision,
            "compile": runtime.compile,
            "data_on_device": runtime.data_on_device,
            "num_threads": torch.get_num_threads(),
        },
        "peak": assumed_peak(args, device, runtime.precision),
        "baseline": "torchvision ImageFolder over the JPEGs; Resize, RandomAffine (same scale "
        f"and shift ranges), ToTensor in a DataLoader with {args.workers} workers; plain "
        "fp32 step in the default memory layout",
        "sizes": [],
    }
    log(f"machine: {report['machine']}")
    log(f"runtime: {report['runtime']}")
    log(f"peak assumed: {report['peak']['how']}")
    need = args.batch_size * max(
        (args.batches or EPOCH_BATCHES.get(size, 10)) for size in args.sizes
    )
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmp = Path(tmp)
        log(f"extracting {archive}")
        root = extract(archive, tmp / "raw")
        paths, labels, distinct = chosen_images(root, need, params.seed)
        report["distinct_images"] = distinct
        for size in args.sizes:
            batches = args.batches or EPOCH_BATCHES.get(size, 10)
            step_batches = args.step_batches or STEP_BATCHES.get(size, 5)
            count = batches * args.batch_size
            log(f"{size} px: decoding {min(count, distinct)} images into the array store")
            data, decode_rate = decode_store(root, paths[:count], labels[:count], size, tmp)
            log(f"{size} px: project epoch, {batches} batches of {args.batch_size}")
            epoch = project_epoch(params, args, size, data, device, runtime)
            log(f"{size} px: project epoch {epoch['images_per_s']:.1f} img/s")
            log(f"{size} px: bare step, {step_batches} steps")
            step = bare_step(params, args, size, data, device, runtime, step_batches)
            flops = count_flops(params, args, size)
            gflops = flops * step["images_per_s"] / 1e9
            log(f"{size} px: bare step {step['images_per_s']:.1f} img/s, {gflops:.1f} GFLOP/s")
            folder = image_folder(root, paths[:count], labels[:count], tmp / f"folder{size}")
            log(f"{size} px: plain baseline, {batches} batches, {args.workers} workers")
            baseline = plain_baseline(params, args, size, folder, device, batches)
            log(f"{size} px: plain baseline {baseline['images_per_s']:.1f} img/s")
            peak = report["peak"]["gflops"]
            result = {
                "size": size,
                "epoch": epoch,
                "baseline": baseline,
                "step": step,
                "epoch_over_baseline": epoch["images_per_s"] / baseline["images_per_s"],
                "epoch_over_step": epoch["images_per_s"] / step["images_per_s"],
                "gflop_per_image": flops / 1e9,
                "achieved_gflops": gflops,
                "peak_fraction": gflops / peak if peak else None,
                "decode_once_images_per_s": decode_rate,
            }
            if args.switches:
                result["switches"] = flipped_switches(
                    params, args, size, data, device, runtime, step_batches, step
                )
            report["sizes"].append(result)
            save(report, args, argv, started, complete=False)  # a run cut short keeps these
            del data
    if not args.no_dvc:
        dvc_archive = args.dvc_archive or (SAMPLE if args.quick else archive)
        # quick: up to train_custom only (the smoke run stays under a minute)
        targets = ["train_custom"] if args.quick else []
        try:
            report["dvc"] = dvc_timing(dvc_archive, args, dict(report["runtime"]), targets)
        except RuntimeError as err:
            report["dvc"] = {"error": str(err)[-3000:]}
            log(f"dvc: failed: {err}")
    save(report, args, argv, started, complete=True)
    print(markdown(report))
    if "error" in report.get("dvc", {}):
        sys.exit(1)
    return report


def flipped_switches(params, args, size, data, device, runtime: Runtime, batches, default):
    """The bare step with each switch of runtime flipped, one at a time (a switch that
    fails here is recorded with its error, not fatal)."""
    flip_layout = "channels_last=" + ("false" if runtime.channels_last else "true")
    flip_compile = "compile=" + ("false" if runtime.compile else "true")
    variants = {
        flip_layout: (replace(runtime, channels_last=not runtime.channels_last), None),
        flip_compile: (replace(runtime, compile=not runtime.compile), None),
    }
    for precision in ("fp32", "bf16"):
        if precision != runtime.precision:
            variants[f"precision={precision}"] = (replace(runtime, precision=precision), None)
    threads = torch.get_num_threads()
    if device.type == "cpu" and threads > 1:
        variants[f"num_threads={threads - 1}"] = (runtime, threads - 1)
    results = []
    for name, (variant, variant_threads) in variants.items():
        log(f"{size} px: bare step with {name}")
        start = time.perf_counter()
        try:
            if variant_threads:
                torch.set_num_threads(variant_threads)
            step = bare_step(params, args, size, data, device, variant, batches)
        except Exception as err:  # a switch this machine cannot run (compile without a compiler)
            results.append({"switch": name, "error": f"{type(err).__name__}: {err}"[:500]})
            log(f"{size} px: {name} failed: {err}")
            continue
        finally:
            torch.set_num_threads(threads)
        results.append(
            {
                "switch": name,
                "images_per_s": step["images_per_s"],
                "vs_default": step["images_per_s"] / default["images_per_s"],
                "seconds_with_warm_up": time.perf_counter() - start,
            }
        )
        log(f"{size} px: {name}: {step['images_per_s']:.1f} img/s")
    return results


if __name__ == "__main__":
    main()
