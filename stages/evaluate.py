"""evaluate: both models on the val folder (the report's measure), its ImageNet-validation
images, the held-out part of the train folder (protocol train_split) and the training
images; --metrics/*.json and confusion-matrix data for dvc plots. Only a run at the report's
settings is compared with the published accuracy (report/protocol.py)."""

import json

import torch

from imagenette_repro.data.batches import load_store
from imagenette_repro.inference.evaluation import CONFUSION_SETS, evaluate_model
from imagenette_repro.models.architecture import parse_layer
from imagenette_repro.models.record import ModelRecord
from imagenette_repro.models.saved import load_model
from imagenette_repro.params import load_params
from imagenette_repro.report.protocol import (
    custom_differences,
    googlenet_differences,
)
from imagenette_repro.runtime import runtime_settings, setup_torch
from imagenette_repro.stage_io import run, stage_paths, write_json


def custom_run(record: ModelRecord, data: dict) -> dict:
    """What protocol.custom_differences reads, from a custom model's record."""
    config = record.train_config
    kind = record.kind
    return {
        "network": record.network,
        "kind": kind,
        "input_size": record.input_size,
        "own_input_size": parse_layer(record.layers[0]).size if kind == "custom" else None,
        "max_epochs": config["max_epochs"],
        "batch_size": config["batch_size"],
        "init": record.init,
        "dropout": record.dropout,
        "patience_on": config["patience_on"] if config["patience"] is not None else None,
        "keep": config["keep"],
        "row_params": record.row_params,
        **data,
    }


def main() -> None:
    paths = stage_paths(
        __doc__, "store", "split_index", "split_summary", "custom", "googlenet", "metrics"
    )
    params = load_params()
    device = setup_torch(params)
    runtime = runtime_settings(params, device)
    store, index = load_store(paths.store, paths.split_index)
    split = json.loads(paths.split_summary.read_text())
    # The images the models were trained and measured on (bad ones skipped by prepare).
    data = {
        "protocol": split["protocol"],
        "folders": {k: int(v) for k, v in index.groupby("folder").size().items()},
    }
    results, per_class = {}, {}
    for name, path in (("custom", paths.custom), ("googlenet", paths.googlenet)):
        model, record = load_model(path)
        summary, classes, pairs = evaluate_model(
            model,
            store,
            index,
            device,
            runtime,
            label=f"evaluate {name}",
            side=record.input_size,
            crop=record.val_crop,
        )
        for set_name in CONFUSION_SETS:
            write_json(paths.metrics / "confusion" / f"{name}_{set_name}.json", pairs[set_name])
        info = {
            "input_size": record.input_size,
            "val_crop": record.val_crop,
            "kept_weights": record.kept_weights,
            "kept_epoch": record.kept_epoch,
            "epochs_run": record.epochs_run,
            "stopped_early": record.stopped_early,
            "best_valid_loss_epoch": record.best_valid_loss_epoch,
            "best_valid_accuracy_epoch": record.best_valid_accuracy_epoch,
            "precision": record.precision,  # of the training step (autocast)
            **summary,
        }
        if name == "custom":
            settings, columns = custom_differences(custom_run(record, data), params.report_rows)
            info.update(
                network=record.network,
                architecture=record.architecture,
                architecture_from_report=record.architecture == record.network,
            )
            row = params.report_rows.get(record.network)
            report_accuracy = row.accuracy if row else None
        else:
            config = record.train_config
            settings = googlenet_differences(
                {
                    "model": record.model,
                    "pretrained": record.pretrained,
                    "input_size": record.input_size,
                    "max_epochs": config["max_epochs"],
                    "batch_size": config["batch_size"],
                    "keep": config["keep"],
                    **data,
                }
            )
            columns = []
            info.update(
                model=record.model,
                weights=record.weights,
                weights_sha256=record.weights_sha256,
                pretrained=record.pretrained,
            )
            if record.zero_shot:  # the ImageNet classifier before fine-tuning
                info["zero_shot"] = record.zero_shot
            report_accuracy = params.report_googlenet_accuracy
        # Compared with the published accuracy only at the report's settings. Strings, not
        # lists: `dvc exp show` leaves lists out of metrics.
        is_row = not settings and not columns
        info.update(
            is_report_row=is_row,
            differs_in_settings=", ".join(settings),
            differs_in_row="; ".join(columns),
        )
        if is_row:
            info["report_accuracy"] = report_accuracy
            info["difference_from_report"] = summary["val_folder"]["accuracy"] - report_accuracy
        results[name] = info
        per_class[name] = classes
        print(
            f"{name}: "
            + ", ".join(
                f"{s} {m['accuracy']:.4f} ({m['images']} images)" for s, m in summary.items()
            )
            + (
                f"; report {report_accuracy:.4f}"
                if is_row
                else f"; not compared with the report ({', '.join(settings + columns)})"
            )
        )
    prepared = json.loads((paths.store / "summary.json").read_text())
    results["data"] = {
        **split,
        "input_size": prepared["input_size"],
        "skipped_bad_images": prepared["skipped_bad_images"],
    }
    write_json(paths.metrics / "evaluation.json", results)
    write_json(paths.metrics / "per_class.json", per_class)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    run(main)
