"""The comparison table, from records shaped like `dvc exp show --json`."""

from imagenette_repro.params import validate
from imagenette_repro.report.comparison import comparison_table, experiments_from_dvc
from imagenette_repro.report.protocol import FULL_ARCHIVE, custom_differences


def experiment(
    name,
    params,
    network,
    optimizer,
    augmentation,
    valid,
    train=None,
    seed=42,
    googlenet=None,
    size=32,
    epochs=30,
):
    """An experiment record with the evaluation evaluate would write for it (its judgement
    of the report's settings from protocol.custom_differences)."""
    row = params["report_rows"][network]
    columns = {
        **{k: row[k] for k in ("learn_rate", "patience", "drop_period", "drop_rate_factor")},
        "optimizer": optimizer,
        "image_augmentation": augmentation,
    }
    values = {
        **params,
        **columns,
        "network": network,
        "seed": seed,
        "data": {**params["data"], "input_size": size},
        "train": {**params["train"], "max_epochs": epochs},
    }
    own_size = 256 if network == "network_75_4395" else 224
    settings, differs = custom_differences(
        {
            "network": network,
            "kind": "custom",
            "input_size": size,
            "own_input_size": own_size,
            "max_epochs": epochs,
            "batch_size": 128,
            "init": "normal_0.01",
            "patience_on": "loss",
            "keep": "final",
            "row_params": columns,
            "protocol": "val_folder",
            "folders": FULL_ARCHIVE,
        },
        validate(params).report_rows,
    )
    is_row = not settings and not differs
    custom = {
        "train": {"accuracy": train},
        "val_folder": {"accuracy": valid},
        "val_folder_imagenet_val": {"accuracy": valid - 0.02},
        "epochs_run": 4,
        "kept_epoch": 4,
        "best_valid_accuracy_epoch": 3,
        "is_report_row": is_row,
        "differs_in_settings": ", ".join(settings),  # as evaluate writes them
        "differs_in_row": "; ".join(differs),
    }
    if is_row:
        custom["report_accuracy"] = row["accuracy"]
        custom["difference_from_report"] = valid - row["accuracy"]
    evaluation = {
        "custom": custom,
        "googlenet": {
            "pretrained": googlenet is not None,
            "val_folder": {"accuracy": googlenet or 0.1},
            "val_folder_imagenet_val": {"accuracy": googlenet or 0.1},
        },
        "data": {"protocol": "val_folder", "images": {"train": 9469, "valid": 3925, "test": 0}},
    }
    metrics = {
        "metrics/evaluation.json": {"data": evaluation},
    }
    return {
        "rev": name,
        "name": name,
        "data": {"params": {"params.yaml": {"data": values}}, "metrics": metrics},
    }


def shown(*revs):
    return [
        {"rev": "workspace", "experiments": None},
        {"rev": "abc", "experiments": [{"name": r["name"], "revs": [r]} for r in revs]},
    ]


def test_only_a_run_at_the_report_settings_is_compared_with_the_report(params):
    running = experiment("running", params, "network_84_8153", "sgdm", True, 0.5)
    running["data"]["metrics"]["metrics/evaluation.json"] = {
        "error": {"type": "FileNotFoundError", "msg": "No such file"}
    }
    old = experiment("old", params, "network_84_8153", "sgdm", True, 0.6)
    old_custom = old["data"]["metrics"]["metrics/evaluation.json"]["data"]["custom"]
    old_custom["valid"] = old_custom.pop("val_folder")  # made before data.protocol
    records = experiments_from_dvc(
        shown(
            running,
            old,
            experiment("a", params, "network_84_8153", "sgdm", True, 0.60),
            experiment("b", params, "network_84_8153", "sgdm", True, 0.84, size=224),
            experiment("c", params, "network_84_8153", "adam", True, 0.50, size=224),
            experiment("d", params, "network_84_8153", "sgdm", True, 0.80, size=224, epochs=12),
        )
    )
    table = comparison_table(records, validate(params)).set_index("experiment")
    assert "running" not in table.index and "old" not in table.index
    assert table.loc["a", "settings"] == "differs: 32 px"
    assert table.loc["d", "settings"] == "differs: 12 epochs max"
    assert table.loc["b", "settings"] == "report settings"
    assert table.loc["c", "differs_in_row"] == "optimizer adam (row: sgdm)"
    assert table.loc["b", "is_report_row"]
    assert not table.loc[["a", "c", "d"], "is_report_row"].any()
    assert table.loc["b", "report_accuracy"] == 0.8482
    assert table.loc["b", "difference_from_report"] == 0.84 - 0.8482
    assert table.loc[["a", "c", "d"], "report_accuracy"].isna().all()
    assert table.loc[["a", "c", "d"], "difference_from_report"].isna().all()
    assert table.loc["b", "val_folder_accuracy"] == 0.84
