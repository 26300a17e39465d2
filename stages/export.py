"""export: a trained model (custom or googlenet; both when none is named) as TorchScript
and ONNX files in data/exported/<name>/, each loaded back and checked against the original
before it is kept; manifest.json there says what the files take and give, their classes,
and how closely they match."""

import sys
from pathlib import Path

import onnx as onnx_package
import onnxruntime
import torch

from imagenette_repro.export import ExportError, description, export_model
from imagenette_repro.saved import load_model
from imagenette_repro.stage_io import file_sha256, run, write_json

MODELS = {"custom": Path("data/models/custom.pt"), "googlenet": Path("data/models/googlenet.pt")}
STAGES = {"custom": "train_custom", "googlenet": "finetune_googlenet"}
OUT = Path("data/exported")


def main(names: list[str]) -> None:
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise ExportError(f"unknown model(s) {', '.join(unknown)}; allowed: {', '.join(MODELS)}")
    missing = [name for name in names if not MODELS[name].is_file()]
    if missing:
        raise ExportError(
            "; ".join(
                f"{MODELS[name]}: missing (made by stage {STAGES[name]}: dvc repro {STAGES[name]})"
                for name in missing
            )
        )
    for name in names:
        path = MODELS[name]
        try:
            model, meta = load_model(path)
        except Exception as err:  # torch.load and rebuilding raise many types
            raise ExportError(f"{path}: not a model saved by the pipeline: {err}") from None
        out = OUT / name
        result = export_model(model, meta, out, name)
        onnx = result["onnx"]
        print(
            f"{name}: {out}/{result['torchscript']['file']} (max probability difference "
            f"{result['torchscript']['max_probability_difference']:.2g}), "
            f"{out}/{onnx['file']} ({onnx['exporter']} exporter, opset {onnx['opset']}, "
            f"max probability difference {onnx['max_probability_difference']:.2g})"
        )
        if "fallback_reason" in onnx:
            print(f"{name}: the dynamo ONNX exporter failed ({onnx['fallback_reason']})")
        manifest = {
            "model": name,
            "source": str(path),
            "source_sha256": file_sha256(path),
            **description(meta),
            **result,
            "versions": {
                "torch": torch.__version__,
                "onnx": onnx_package.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
        }
        write_json(out / "manifest.json", manifest)


if __name__ == "__main__":
    run(lambda: main(sys.argv[1:] or list(MODELS)))
