"""How fast candidate networks for a recipe train on this machine: images/s of the
training step (`training.train_step`, the one `fit` runs) of timm models at one input side,
with the recipe's optimiser settings and the precision `runtime.precision: auto` picks.

    python bench/recipe_speed.py [--recipe NAME] [--side 128] [--batch 64] [--steps 4]
        [--model-arg KEY=VALUE ...] [MODEL ...]

The recipe's model_args go to timm (e.g. fastai_5ep's act_layer, aa_layer); --model-arg
changes or adds one, its value read as YAML (act_layer=mish, aa_layer=null, stem_width=32).

A measurement, not a test: run it on a quiet machine. Prints one line per model and the
machine; --out FILE also writes them as JSON."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from imagenette_repro.files import replacing
from imagenette_repro.machine import machine_info
from imagenette_repro.models.networks import build_timm_network
from imagenette_repro.params import load_params
from imagenette_repro.runtime import Runtime, auto_precision
from imagenette_repro.train.loop import make_optimizer, parameter_groups, train_step
from imagenette_repro.train.settings import custom_training

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["resnet10t", "resnet18", "resnet26d", "resnet26t", "resnet34d", "resnet50d"]


def step_speed(
    name: str, side: int, batch: int, steps: int, runtime: Runtime, config, model_args: dict
) -> float:
    torch.manual_seed(0)
    model = build_timm_network(name, 4, 10, model_args).to(memory_format=runtime.memory_format)
    optimizer = make_optimizer(parameter_groups(model, config), config)
    scaler = runtime.grad_scaler(torch.device("cpu"))
    x = torch.rand(batch, 3, side, side).contiguous(memory_format=runtime.memory_format)
    labels = torch.arange(batch) % 10
    model.train()
    for _ in range(2):  # warm-up: allocations, oneDNN's kernel choice
        train_step(model, optimizer, scaler, x, labels, runtime, config.label_smoothing)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, scaler, x, labels, runtime, config.label_smoothing)
    return steps * batch / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=MODELS, metavar="MODEL")
    parser.add_argument("--recipe", default="imagenette_128", help="params.yaml recipes.NAME")
    parser.add_argument("--side", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    params = load_params(ROOT / "params.yaml").model_copy(update={"network": args.recipe})
    model_args = dict(params.recipes[args.recipe].model_args or {})
    for item in args.model_arg:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--model-arg {item!r}: expected KEY=VALUE")
        model_args[key] = yaml.safe_load(value)  # as params.yaml reads it: 32, null, mish
    config = replace(custom_training(params, args.side), batch_size=args.batch)
    device = torch.device("cpu")
    runtime = Runtime(channels_last=True, precision=auto_precision(device))
    machine = machine_info(device)
    print(f"{machine['cpu']}, {torch.get_num_threads()} threads, {runtime.precision}, {model_args}")
    found = {}
    for name in args.models:
        found[name] = step_speed(
            name, args.side, args.batch, args.steps, runtime, config, model_args
        )
        print(f"{name}: {found[name]:.0f} img/s (training step, {args.side} px)")
    if args.out:
        report = {
            "machine": machine,
            "precision": runtime.precision,
            "recipe": args.recipe,
            "model_args": model_args,
            "threads": torch.get_num_threads(),
            "side": args.side,
            "batch": args.batch,
            "steps": args.steps,
            "images_per_s": found,
        }
        with replacing(args.out) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
