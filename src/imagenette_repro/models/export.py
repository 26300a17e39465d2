"""Trained models as TorchScript and ONNX files, each checked against the original.

Every exported model takes what the saved one takes, float RGB images in [0, 1] of shape
(N, 3, S, S) with any batch size N (decoded and squashed to S x S as the prepare stage
does), normalises them itself, and returns the 10 logits (softmax gives probabilities).
Each file is written under a temporary name, loaded back (torch.jit.load, an onnxruntime
InferenceSession) and compared with the original model on batches of 1 and 3 images, and
only then renamed into place: a file that does not match is never left behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import onnx
import onnxruntime
import torch
from torch import nn

from ..data.classes import CLASSES
from ..errors import UserError
from ..files import replacing
from .record import ModelRecord

TOLERANCE = 1e-4  # largest difference allowed between probabilities
CHECK_BATCHES = (1, 3)  # batch sizes compared, neither the one traced (2): dynamic batch
INPUT_NAME, OUTPUT_NAME = "images", "logits"
EXPORTERS = ("dynamo", "legacy")


class ExportError(UserError, RuntimeError):
    """A model that cannot be exported, or whose export does not give its outputs (a
    UserError: stage.run reports it as one line with exit code 2)."""


@contextlib.contextmanager
def _quiet_torch_jit() -> Iterator[None]:
    # torch 2.9+ marks torch.jit deprecated (FutureWarning on every call); the files
    # still load in C++ (libtorch) and Python, which is what they are for.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit.* is deprecated", category=FutureWarning
        )
        yield


def check_input(size: int, batch: int, seed: int = 0) -> torch.Tensor:
    """A fixed batch of random images in [0, 1]."""
    generator = torch.Generator().manual_seed(seed + batch)
    return torch.rand(batch, 3, size, size, generator=generator)


def description(record: ModelRecord) -> dict:
    """What a user of an exported file needs: its input, its output, the classes."""
    names = {wnid: (english, polish) for wnid, english, polish in CLASSES}
    size = record.input_size
    return {
        "kind": record.kind,
        "network": record.network,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, size, size],
            "dtype": "float32",
            "values": f"RGB in [0, 1], the whole image squashed to {size}x{size} "
            "(bicubic), as the prepare stage decodes it; normalised inside the model",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(record.classes)],
            "values": "logits; softmax over axis 1 gives the probabilities",
        },
        "classes": [
            {
                "label": label,
                "id": wnid,
                "english": names.get(wnid, (wnid, None))[0],
                "polish": names.get(wnid, (wnid, None))[1],
            }
            for label, wnid in enumerate(record.classes)
        ],
    }


def export_torchscript(model: nn.Module, record: ModelRecord, path: Path) -> None:
    """torch.jit.trace on a batch of 2; the description rides along as extra file
    `meta.json` (torch.jit.load(path, _extra_files={"meta.json": ""})). Not trace's own
    check (check_trace, slow on GoogLeNet): verify compares the file with the model."""
    example = check_input(record.input_size, 2)
    with _quiet_torch_jit(), torch.no_grad():
        traced = torch.jit.trace(model.eval(), example, check_trace=False)
        extra = {"meta.json": json.dumps(description(record), ensure_ascii=False)}
        torch.jit.save(traced, str(path), _extra_files=extra)


def export_onnx(
    model: nn.Module, record: ModelRecord, path: Path, exporter: str = "dynamo"
) -> None:
    """torch.onnx.export with a dynamic batch dimension, weights inside the one file, and
    the description as metadata property `imagenette`.

    exporter: "dynamo" (torch.export-based, torch's default since 2.9) or "legacy" (the
    TorchScript-based exporter, deprecated)."""
    example = (check_input(record.input_size, 2),)
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}
    model.eval()
    # The exporters print progress and warnings of their own; the caller reports results.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=True,
                external_data=False,
                verbose=False,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                **names,
            )
        elif exporter == "legacy":
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamo=False,
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                **names,
            )
        else:
            raise ValueError(f"exporter {exporter!r}; allowed: {', '.join(EXPORTERS)}")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "imagenette", json.dumps(description(record), ensure_ascii=False)
    onnx.save(proto, str(path))


def run_torchscript(path: Path, images: torch.Tensor) -> torch.Tensor:
    # Without the profiling executor's optimisations, which take seconds on a model's
    # first calls and do not change what it computes.
    with _quiet_torch_jit(), torch.inference_mode(), torch.jit.optimized_execution(False):
        return torch.jit.load(str(path), map_location="cpu")(images)


def run_onnx(path: Path, images: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
    return torch.from_numpy(logits)


def compare(expected: torch.Tensor, got: torch.Tensor, tolerance: float = TOLERANCE) -> str | None:
    """None when `got` logits give the probabilities of `expected` (max abs difference
    below tolerance) and the same top class, else what differs. Top classes whose
    probabilities tie within the tolerance count as the same (an untrained network can
    give ten equal probabilities, whose argmax rounding decides)."""
    if got.shape != expected.shape:
        return f"output shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    p_expected, p_got = expected.float().softmax(1), got.float().softmax(1)
    difference = (p_expected - p_got).abs().max().item()
    if not difference < tolerance:
        return f"probabilities differ by up to {difference:.3g} (tolerance {tolerance:g})"
    top = p_got.argmax(1, keepdim=True)
    chosen = p_expected.gather(1, top).squeeze(1)
    wrong = (chosen < p_expected.max(1).values - tolerance).nonzero().flatten().tolist()
    if wrong:
        return f"top class differs for image(s) {wrong} of the batch"
    return None


def max_difference(expected: torch.Tensor, got: torch.Tensor) -> float:
    return (expected.float().softmax(1) - got.float().softmax(1)).abs().max().item()


def verify(
    model: nn.Module, record: ModelRecord, path: Path, run_file, tolerance: float = TOLERANCE
) -> float:
    """Compare the exported file with the model on batches of CHECK_BATCHES images; return
    the largest probability difference, or raise ExportError naming the file."""
    largest = 0.0
    for batch in CHECK_BATCHES:
        images = check_input(record.input_size, batch)
        with torch.inference_mode():
            expected = model.eval()(images)
        try:
            got = run_file(path, images)
        except Exception as err:  # each runtime raises its own types
            raise ExportError(
                f"{path}: cannot run the exported model on a batch of {batch}: {err}"
            ) from None
        problem = compare(expected, got, tolerance)
        if problem:
            raise ExportError(
                f"{path}: does not match the original model on a batch of {batch}: {problem}"
            )
        largest = max(largest, max_difference(expected, got))
    return largest


def export_model(
    model: nn.Module,
    record: ModelRecord,
    out_dir: Path,
    name: str,
    exporter: str = "dynamo",
    tolerance: float = TOLERANCE,
) -> dict:
    """Write <name>.torchscript.pt and <name>.onnx into out_dir, each checked before it is
    renamed into place; returns what was written and how closely it matches.

    With exporter "dynamo", a model the dynamo exporter cannot convert is exported with
    the legacy one (said in result["onnx"]: "exporter" and "fallback_reason")."""
    model = model.cpu().eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"input_size": record.input_size, "tolerance": tolerance}

    torchscript = out_dir / f"{name}.torchscript.pt"
    difference = _write_checked(
        torchscript,
        "TorchScript",
        lambda tmp: export_torchscript(model, record, tmp),
        lambda tmp: verify(model, record, tmp, run_torchscript, tolerance),
    )
    result["torchscript"] = {"file": torchscript.name, "max_probability_difference": difference}

    onnx_path = out_dir / f"{name}.onnx"
    used, fallback_reason = exporter, None

    def write_onnx(tmp: Path) -> None:
        nonlocal used, fallback_reason
        try:
            export_onnx(model, record, tmp, exporter)
        except OSError:
            raise
        except Exception as err:  # the exporters raise many types
            if exporter != "dynamo":
                raise
            used, fallback_reason = "legacy", f"{type(err).__name__}: {err}"
            try:
                export_onnx(model, record, tmp, "legacy")
            except Exception as err2:
                raise ExportError(
                    f"{onnx_path}: ONNX export failed with both exporters: dynamo: {err}; "
                    f"legacy: {err2}"
                ) from None

    difference = _write_checked(
        onnx_path,
        "ONNX",
        write_onnx,
        lambda tmp: verify(model, record, tmp, run_onnx, tolerance),
    )
    opset = {o.domain or "ai.onnx": o.version for o in onnx.load(str(onnx_path)).opset_import}
    result["onnx"] = {
        "file": onnx_path.name,
        "max_probability_difference": difference,
        "exporter": used,
        "opset": opset.get("ai.onnx"),
    }
    if fallback_reason:
        result["onnx"]["fallback_reason"] = fallback_reason[:500]
    return result


def _write_checked(path: Path, format_name: str, write, check) -> float:
    """write(tmp), then check(tmp) -> its figure; the file is renamed to `path` only when
    both succeed (a write fault is told by replacing(), any other failure names the file)."""
    with replacing(path) as tmp:
        try:
            write(tmp)
        except (OSError, ExportError):
            raise
        except Exception as err:  # tracing and the exporters raise many types
            raise ExportError(f"{path}: {format_name} export failed: {err}") from None
        return check(tmp)
