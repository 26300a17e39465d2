"""What makes a run one of the report's rows (report/protocol.py), the rule evaluate and
report.py both follow."""

import pytest

from imagenette_repro.params import validate
from imagenette_repro.report.protocol import (
    FULL_ARCHIVE,
    custom_differences,
    googlenet_differences,
    settings_label,
)


def report_run(**changes) -> dict:
    run = {
        "network": "network_74_1656",
        "kind": "custom",
        "input_size": 256,
        "own_input_size": 256,
        "max_epochs": 30,
        "batch_size": 128,
        "init": "normal_0.01",
        "patience_on": "loss",
        "keep": "final",
        "row_params": {
            "optimizer": "adam",
            "learn_rate": 0.0001,
            "patience": 5,
            "drop_period": 2,
            "drop_rate_factor": 0.5,
            "image_augmentation": False,
        },
        "protocol": "val_folder",
        "folders": dict(FULL_ARCHIVE),
    }
    run.update(changes)
    return run


def test_a_row_at_the_report_settings_differs_in_nothing(repo_params):
    assert custom_differences(report_run(), validate(repo_params).report_rows) == ([], [])
    assert settings_label("") == "report settings"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"input_size": 224}, "224 px"),  # a 256-px row at 224
        ({"max_epochs": 12}, "12 epochs max"),
        ({"batch_size": 10}, "batch 10"),
        ({"protocol": "train_split"}, "protocol train_split"),
        ({"folders": {"train": 200, "val": 60}}, "200 train + 60 val images"),
        ({"init": "glorot"}, "init glorot"),
        ({"patience_on": "accuracy"}, "patience_on accuracy"),
        ({"keep": "best_accuracy"}, "keep best_accuracy"),
    ],
)
def test_every_setting_that_differs_is_named(repo_params, changes, expected):
    settings, columns = custom_differences(report_run(**changes), validate(repo_params).report_rows)
    assert settings == [expected] and columns == []


def test_columns_and_recipes_are_not_report_rows(repo_params):
    run = report_run()
    run["row_params"] = {**run["row_params"], "optimizer": "sgdm"}
    _, columns = custom_differences(run, validate(repo_params).report_rows)
    assert columns == ["optimizer sgdm (row: adam)"]
    _, columns = custom_differences(
        report_run(kind="timm", network="modern_resnet"), validate(repo_params).report_rows
    )
    assert columns == ["a modern recipe, not one of the report's rows"]


def test_googlenet_is_compared_only_as_the_report_fine_tuned_it():
    run = {
        "pretrained": True,
        "input_size": 224,
        "max_epochs": 6,
        "batch_size": 10,
        "keep": "final",
        "protocol": "val_folder",
        "folders": dict(FULL_ARCHIVE),
    }
    assert googlenet_differences(run) == []
    run.update(pretrained=False, max_epochs=1, batch_size=128)
    assert googlenet_differences(run) == [
        "not from ImageNet weights",
        "1 epochs max",
        "batch 128",
    ]
