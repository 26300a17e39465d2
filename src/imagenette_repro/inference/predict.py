"""Classify image files with a model trained by the pipeline (custom or GoogLeNet).

    python -m imagenette_repro.inference.predict [--model data/models/custom.pt] [--top K]
        [--json] PATH...

Each PATH is an image file or a folder (searched recursively for files of any format PIL
opens). Every image is decoded as the prepare stage decodes it (RGB, the whole frame
squashed to the model's input size) and the top K classes are printed with their
probabilities, in English and in the report's Polish. An image that cannot be read is
reported (on stderr, and in the JSON with an `error`) and the others go on. Exit code 0:
every image classified; 1: some image failed; 2: bad usage (no such model, bad option).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.batches import centre_view, to_input
from ..data.classes import CLASSES
from ..data.dataset import DataError, decode_image
from ..models.record import ModelRecord
from ..models.saved import load_model

DEFAULT_MODEL = Path("data/models/custom.pt")
NAMES = {wnid: (english, polish) for wnid, english, polish in CLASSES}


class UsageError(Exception):
    """Bad usage: the message is printed and the exit code is 2."""


def image_suffixes() -> set[str]:
    """Every file suffix PIL can open (.jpg, .png, .bmp, .tif, .webp, ...)."""
    return {suffix.lower() for suffix in Image.registered_extensions()}


def find_images(paths: list[Path]) -> list[tuple[Path, str | None]]:
    """(path, error) for each image to classify, in the order given; folders are searched
    recursively (sorted) for files with an image suffix. A path that does not exist or a
    folder without images is an entry with an error."""
    suffixes = image_suffixes()
    found: list[tuple[Path, str | None]] = []
    for path in paths:
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
            )
            if not files:
                found.append((path, "folder holds no image files"))
            found += [(file, None) for file in files]
        elif path.exists():
            found.append((path, None))  # named explicitly: tried whatever its suffix
        else:
            found.append((path, "no such file or folder"))
    return found


def class_names(record: ModelRecord) -> list[tuple[str, str, str | None]]:
    """(class id, English, Polish) for each output of the model, in label order."""
    english = record.class_names or record.classes
    return [
        (wnid, *NAMES[wnid]) if wnid in NAMES else (wnid, english[i], None)
        for i, wnid in enumerate(record.classes)
    ]


def _reason(path: Path, err: DataError) -> str:
    # decode_image's messages start with the path; the entry holds it already.
    message = str(err)
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def classify(
    model: torch.nn.Module,
    record: ModelRecord,
    paths: list[Path],
    top: int = 3,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> Iterator[dict]:
    """One result per image, in order: {"path", "error", "predictions"}; predictions are
    the top classes, most probable first: {"rank", "label", "class_id", "english",
    "polish", "probability"}. Images are decoded and run `batch_size` at a time."""
    device = torch.device(device)
    size = record.image_size or record.input_size  # decoded as the training images were
    names = class_names(record)
    top = min(top, len(names))
    model.eval().to(device)
    for chunk in _chunks(find_images(paths), batch_size):
        arrays, results = [], []
        for path, error in chunk:
            if error is None:
                try:
                    arrays.append(decode_image(path, size))
                except DataError as err:
                    error = _reason(path, err)
                except Exception as err:  # PIL raises other types for some broken files
                    error = f"cannot decode image: {type(err).__name__}: {err}"
            results.append({"path": str(path), "error": error, "predictions": []})
        if arrays:
            images = torch.from_numpy(np.stack(arrays))
            with torch.inference_mode():
                x = centre_view(to_input(images, device), record.input_size, record.val_crop)
                probabilities = model(x).float().softmax(1).cpu()
            values, labels = probabilities.topk(top, dim=1)
            ok = (result for result in results if result["error"] is None)
            for result, row_values, row_labels in zip(ok, values, labels, strict=True):
                result["predictions"] = [
                    {
                        "rank": rank,
                        "label": label,
                        "class_id": names[label][0],
                        "english": names[label][1],
                        "polish": names[label][2],
                        "probability": probability,
                    }
                    for rank, (label, probability) in enumerate(
                        zip(row_labels.tolist(), row_values.tolist(), strict=True), 1
                    )
                ]
        yield from results


def format_result(result: dict) -> str:
    lines = [result["path"]]
    for p in result["predictions"]:
        polish = f" ({p['polish']})" if p["polish"] else ""
        lines.append(f"  {p['rank']}. {100 * p['probability']:6.2f}%  {p['english']}{polish}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m imagenette_repro.inference.predict",
        description="Classify images with a model trained by the pipeline: the top K "
        "Imagenette classes, in English and in the report's Polish.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image or folder")
    parser.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL,
        help=f"a model saved by the pipeline (default: {DEFAULT_MODEL}; "
        "or data/models/googlenet.pt)",
    )
    parser.add_argument("--top", type=int, default=3, metavar="K", help="classes per image")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top must be at least 1, not {args.top}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, not {args.batch_size}")
    return args


def open_model(path: Path) -> tuple[torch.nn.Module, ModelRecord]:
    if not path.is_file():
        raise UsageError(
            f"model file {path} not found; train it with `dvc repro` (data/models/custom.pt "
            f"comes from stage train_custom, data/models/googlenet.pt from finetune_googlenet) "
            f"or name another with --model"
        )
    try:
        return load_model(path)
    except Exception as err:  # torch.load and rebuilding raise many types for a bad file
        raise UsageError(f"{path}: not a model saved by the pipeline: {err}") from None


def pick(device: str) -> torch.device:
    try:
        chosen = torch.device(device)
    except RuntimeError as err:
        raise UsageError(f"--device {device!r}: {err}") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device!r}: no CUDA device is available; use cpu")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = pick(args.device)
        model, record = open_model(args.model)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = []
    for result in classify(model, record, args.paths, args.top, args.batch_size, device):
        if result["error"] is not None:
            print(f"error: {result['path']}: {result['error']}", file=sys.stderr, flush=True)
        elif not args.json:
            print(format_result(result), flush=True)
        results.append(result)
    failed = sum(result["error"] is not None for result in results)
    if args.json:
        document = {
            "model": str(args.model),
            "kind": record.kind,
            "network": record.network,
            "input_size": record.input_size,
            "top": min(args.top, len(record.classes)),
            "images": results,
            "classified": len(results) - failed,
            "failed": failed,
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    if failed:
        print(f"{failed} of {len(results)} image(s) could not be classified", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
