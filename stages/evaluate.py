"""evaluate: both models on the report's validation split, the official val folder, and
its ImageNet-validation images; metrics/*.json and confusion-matrix data for dvc plots."""

import json
from pathlib import Path

import torch

from imagenette_repro.data import load_store
from imagenette_repro.evaluation import evaluate_model
from imagenette_repro.models import load_model
from imagenette_repro.network_stage import (
    SPLIT_INDEX,
    STORE,
    runtime_settings,
    setup_torch,
)
from imagenette_repro.params import ROW_COLUMNS, load_params
from imagenette_repro.stage import run, write_json

MODELS = {"custom": Path("data/models/custom.pt"), "googlenet": Path("data/models/googlenet.pt")}


def main() -> None:
    params = load_params()
    device = setup_torch(params)
    runtime = runtime_settings(params, device)
    data, index = load_store(STORE, SPLIT_INDEX)
    results, per_class = {}, {}
    for name, path in MODELS.items():
        model, meta = load_model(path)
        summary, classes, pairs = evaluate_model(model, data, index, device, runtime)
        for set_name in ("valid", "test"):
            write_json(f"metrics/confusion/{name}_{set_name}.json", pairs[set_name])
        info = {
            "input_size": meta["input_size"],
            "best_epoch": meta["best_epoch"],
            "epochs_run": meta["epochs_run"],
            **summary,
        }
        if name == "custom":
            # A run is compared with the report only when it is one of the report's rows:
            # the same network and the same values in every column of the table.
            row = params["report_rows"].get(meta["network"])
            is_row = row is not None and all(
                meta["row_params"][key] == row[key] for key in ROW_COLUMNS
            )
            info.update(
                network=meta["network"],
                architecture=meta["architecture"],
                architecture_from_report=meta["architecture"] == meta["network"],
                is_report_row=is_row,
            )
            report_accuracy = row["accuracy"] if is_row else None
        else:
            # Only a fine-tuning from ImageNet weights is the report's protocol.
            info.update(
                weights=meta["weights"],
                pretrained=meta["pretrained"],
                report_protocol=meta["pretrained"],
            )
            report_accuracy = params["report_googlenet_accuracy"] if meta["pretrained"] else None
        if report_accuracy is not None:
            info["report_accuracy"] = report_accuracy
            info["difference_from_report"] = summary["valid"]["accuracy"] - report_accuracy
        results[name] = info
        per_class[name] = classes
        print(
            f"{name}: "
            + ", ".join(
                f"{s} {m['accuracy']:.4f} ({m['images']} images)" for s, m in summary.items()
            )
            + (f"; report {report_accuracy:.4f}" if report_accuracy is not None else "")
        )
    split = json.loads((SPLIT_INDEX.parent / "summary.json").read_text())
    prepared = json.loads((STORE / "summary.json").read_text())
    results["data"] = {
        **split,
        "input_size": prepared["input_size"],
        "skipped_bad_images": prepared["skipped_bad_images"],
    }
    write_json("metrics/evaluation.json", results)
    write_json("metrics/per_class.json", per_class)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    run(main)
