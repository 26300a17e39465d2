"""The comparison and the conclusions, from records shaped like `dvc exp show --json`."""

from imagenette_repro.report import comparison_table, conclusions, experiments_from_dvc


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
):
    row = params["report_rows"][network]
    values = {
        **params,
        "network": network,
        "seed": seed,
        **{k: row[k] for k in ("learn_rate", "patience", "drop_period", "drop_rate_factor")},
        "optimizer": optimizer,
        "image_augmentation": augmentation,
        "data": {**params["data"], "input_size": size},
    }
    evaluation = {
        "custom": {
            "train": {"accuracy": train},
            "valid": {"accuracy": valid},
            "test": {"accuracy": valid - 0.01},
            "test_imagenet_val": {"accuracy": valid - 0.02},
            "epochs_run": 4,
            "best_epoch": 3,
        },
        "googlenet": {
            "pretrained": googlenet is not None,
            "valid": {"accuracy": googlenet or 0.1},
            "test_imagenet_val": {"accuracy": googlenet or 0.1},
        },
        "data": {"images": {"train": 6630, "valid": 2839, "test": 3925}},
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


def test_rows_are_labelled_and_compared_with_the_report(params):
    running = experiment("running", params, "network_84_8153", "sgdm", True, 0.5)
    running["data"]["metrics"]["metrics/evaluation.json"] = {
        "error": {"type": "FileNotFoundError", "msg": "No such file"}
    }
    records = experiments_from_dvc(
        shown(
            running,
            experiment("a", params, "network_84_8153", "sgdm", True, 0.60),
            experiment("b", params, "network_84_8153", "sgdm", True, 0.84, size=224),
            experiment("c", params, "network_84_8153", "adam", True, 0.50),
        )
    )
    table = comparison_table(records, params).set_index("experiment")
    assert "running" not in table.index
    assert table.loc["a", "settings"] == "scaled: 32 px"
    assert table.loc["b", "settings"] == "report settings"
    assert table.loc["a", "is_report_row"] and not table.loc["c", "is_report_row"]
    assert table.loc["a", "report_accuracy"] == 0.8482
    assert table.loc["b", "valid_accuracy"] == 0.84


def test_conclusions_follow_the_numbers(params):
    revs = [
        experiment("sgd-aug", params, "network_84_8153", "sgdm", True, 0.60, train=0.62),
        experiment("sgd-noaug", params, "network_84_8153", "sgdm", False, 0.50, train=0.70),
        experiment("adam-aug", params, "network_82_828", "adam", True, 0.55, train=0.60),
        experiment(
            "nodrop", params, "network_75_4395", "adam", False, 0.45, train=0.80, googlenet=0.90
        ),
    ]
    found = {
        c["conclusion"][:2]: c
        for c in conclusions(comparison_table(experiments_from_dvc(shown(*revs)), params), params)
    }
    assert found["1."]["verdict"] == "supported"  # 0.90 vs best custom 0.60
    assert found["2."]["verdict"] == "supported"  # 0.60 with, 0.50 without augmentation
    assert found["3."]["verdict"] == "supported"  # adam 0.55 < sgdm 0.60 on the same layers
    assert found["4."]["verdict"] == "supported"  # gap 0.35 without dropout, smaller with
    revs[2] = experiment("adam-aug", params, "network_82_828", "adam", True, 0.70, train=0.7)
    found = {
        c["conclusion"][:2]: c
        for c in conclusions(comparison_table(experiments_from_dvc(shown(*revs)), params), params)
    }
    assert found["3."]["verdict"] == "not supported"
    assert "adam 70.00%" in found["3."]["evidence"]
