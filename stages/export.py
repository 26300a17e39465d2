"""export: a trained model (--model, data/models/<name>.pt) as TorchScript and ONNX files
in --out, each loaded back and checked against the original before it is kept;
manifest.json there says what the files take and give, their classes, and how closely
they match."""

import onnx as onnx_package
import onnxruntime
import torch

from imagenette_repro.models.export import ExportError, description, export_model
from imagenette_repro.models.saved import load_model
from imagenette_repro.stage_io import file_sha256, run, stage_paths, write_json

STAGES = {"custom": "train_custom", "googlenet": "finetune_googlenet"}  # who makes which


def main() -> None:
    paths = stage_paths(__doc__, "model", "out")
    name, path, out = paths.model.stem, paths.model, paths.out
    if not path.is_file():
        stage = STAGES.get(name)
        made_by = f" (made by stage {stage}: dvc repro {stage})" if stage else ""
        raise ExportError(f"{path}: missing{made_by}")
    try:
        model, record = load_model(path)
    except Exception as err:  # torch.load and rebuilding raise many types
        raise ExportError(f"{path}: not a model saved by the pipeline: {err}") from None
    result = export_model(model, record, out, name)
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
        **description(record),
        **result,
        "versions": {
            "torch": torch.__version__,
            "onnx": onnx_package.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }
    write_json(out / "manifest.json", manifest)


if __name__ == "__main__":
    run(main)
