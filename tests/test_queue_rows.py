import pytest

from imagenette_repro.experiments.catalogue import apply_overrides
from imagenette_repro.experiments.queue_rows import (
    main,
    queue_command,
    queue_states,
    row_overrides,
)
from imagenette_repro.params import ParamsError, validate

from .conftest import ROOT


def parse_command(command: list[str]) -> tuple[str, dict]:
    assert command[:5] == ["dvc", "exp", "run", "--queue", "-n"]
    name, rest = command[5], command[6:]
    assert rest[::2] == ["-S"] * (len(rest) // 2)
    values = dict(item.split("=", 1) for item in rest[1::2])
    assert len(values) == len(rest) // 2, "a key is set twice"
    return name, values


def test_every_row_is_queued_with_its_values_from_params(params):
    assert len(params["report_rows"]) == 15
    for row, values in params["report_rows"].items():
        name, overrides = parse_command(queue_command(validate(params), row))
        assert name == row
        assert overrides["network"] == row
        assert overrides["optimizer"] == values["optimizer"]
        assert float(overrides["learn_rate"]) == values["learn_rate"]
        assert int(overrides["patience"]) == values["patience"]
        assert int(overrides["drop_period"]) == values["drop_period"]
        assert float(overrides["drop_rate_factor"]) == values["drop_rate_factor"]
        assert overrides["image_augmentation"] == str(values["image_augmentation"]).lower()
        expected_size = (
            256
            if row
            in (
                "network_74_1656",
                "network_75_4395",
                "network_64_0764",
                "network_65_6561",
                "network_71_6943",
            )
            else 224
        )
        assert overrides["data.input_size"] == str(expected_size), row


def test_extra_overrides_and_seeds_reach_every_row(params):
    extra = ["data.input_size=32", "train.max_epochs=5"]
    command = queue_command(validate(params), "network_75_4395", extra, seed=3)
    name, overrides = parse_command(command)
    assert name == "network_75_4395-seed3"
    assert overrides["data.input_size"] == "32"
    assert overrides["train.max_epochs"] == "5"
    assert overrides["seed"] == "3"


def test_unknown_row_is_named(params):
    with pytest.raises(ParamsError, match="unknown row 'network_1'"):
        row_overrides(validate(params), "network_1")


def test_overrides_are_applied_as_dvc_would(params):
    overrides = row_overrides(validate(params), "network_82_828", ["data.input_size=32", "seed=7"])
    applied = apply_overrides(params, overrides)
    assert applied["optimizer"] == "adam" and applied["learn_rate"] == 0.0001
    assert applied["data"]["input_size"] == 32 and applied["seed"] == 7
    assert applied["image_augmentation"] is True
    assert applied["train"] == params["train"]
    assert params["optimizer"] == "sgdm"  # the original is left alone


def test_a_variant_replaces_the_row_value_and_gets_its_own_name(params):
    command = queue_command(
        validate(params), "network_84_8153", ["image_augmentation=false"], suffix="no-aug"
    )
    name, overrides = parse_command(command)
    assert name == "network_84_8153-no-aug"
    assert overrides["image_augmentation"] == "false"


def test_the_command_line_prints_what_it_would_queue(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    argv = [
        "queue",
        "network_84_8153",
        "network_82_828",
        "--name-suffix",
        "no-aug",
        "-S",
        "image_augmentation=false",
        "--seeds",
        "1",
        "2",
        "--dry-run",
    ]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [parse_command(line.split())[0] for line in lines]
    assert names == [
        "network_84_8153-no-aug-seed1",
        "network_84_8153-no-aug-seed2",
        "network_82_828-no-aug-seed1",
        "network_82_828-no-aug-seed2",
    ]
    assert all("-S image_augmentation=false" in line for line in lines)


def test_queue_states_reads_only_the_experiments_named():
    status = (
        "Task     Name             Created    Status\n"
        "ab24381  network_84_8153  04:22 PM   Success\n"
        "cd12345  network_82_828   04:20 PM   Failed\n"
        "ef67890  network_83_949   04:25 PM   Running\n"
        "\nWorker status: 1 active, 0 idle\n"
    )
    names = {"network_84_8153", "network_83_949", "network_79_0828"}
    assert queue_states(status, names) == {
        "network_84_8153": "Success",
        "network_83_949": "Running",
    }
