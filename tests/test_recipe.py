"""The modern recipe (params.yaml `recipes`): its params, its training through the same
`fit` loop (label smoothing, mixup/cutmix, per-batch schedule, resume), the report's
rows left as they were, and its place in rows.py and report.py."""

import os
import re
import subprocess
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from imagenette_repro.experiments.queue_rows import row_overrides
from imagenette_repro.models.networks import build_timm_network
from imagenette_repro.models.record import save_model
from imagenette_repro.models.saved import load_model
from imagenette_repro.params import ParamsError, validate
from imagenette_repro.report.comparison import comparison_table, experiments_from_dvc
from imagenette_repro.train.loop import TrainConfig, fit, make_scheduler
from imagenette_repro.train.settings import recipe_training

from .conftest import ROOT, model_record
from .scratch import stage_argv
from .test_comparison import experiment, shown
from .test_training import config, dropout_model, tiny_set

SIZE = 16


def recipe_config(params: dict, **changes) -> TrainConfig:
    """The modern_resnet recipe's training as train_custom builds it (training_settings),
    made tiny (batch 10, 3 epochs, a 2-px shift) and with Mixup and CutMix on, so that
    their path runs."""
    built = recipe_training(validate({**params, "network": "modern_resnet"}), SIZE)
    tiny = dict(batch_size=10, max_epochs=3, translation=2.0, mixup_alpha=0.2, cutmix_alpha=1.0)
    return replace(built, **{**tiny, **changes})


def timm_model(params: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    recipe = params["recipes"]["modern_resnet"]
    return build_timm_network(recipe["model"], recipe["stem_stride"])


# --- params ---------------------------------------------------------------------------


def test_the_repository_recipe_is_valid_and_selectable(params):
    assert "modern_resnet" in params["recipes"]
    params["network"] = "modern_resnet"
    checked = validate(params)
    assert checked.is_recipe and checked.recipe.model == "resnet10t"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("optimizer", "sgdm", "'recipes.modern_resnet.optimizer' is 'sgdm'; allowed: adamw"),
        ("schedule", "step", "'recipes.modern_resnet.schedule' is 'step'; allowed: cosine"),
        ("stem_stride", 3, "'recipes.modern_resnet.stem_stride' is 3; allowed: 1, 2, 4"),
        ("learn_rate", 0, "'recipes.modern_resnet.learn_rate' must be > 0"),
        ("batch_size", -2, "'recipes.modern_resnet.batch_size' must be > 0"),
        ("weight_decay", -0.1, "'recipes.modern_resnet.weight_decay' must be >= 0"),
        ("warmup_epochs", -1, "'recipes.modern_resnet.warmup_epochs' must be >= 0"),
        ("mixup_alpha", -0.2, "'recipes.modern_resnet.mixup_alpha' must be >= 0"),
        ("cutmix_alpha", -1, "'recipes.modern_resnet.cutmix_alpha' must be >= 0"),
        ("label_smoothing", 1.0, "'recipes.modern_resnet.label_smoothing' must be in [0, 1)"),
        (
            "label_smoothing",
            "0.1",
            "'recipes.modern_resnet.label_smoothing' must be number, got '0.1'",
        ),
        ("crop_area_min", 0, "'recipes.modern_resnet.crop_area_min' must be in (0, 1]"),
        ("crop_area_min", 1.5, "'recipes.modern_resnet.crop_area_min' must be in (0, 1]"),
        ("reflection", 1, "'recipes.modern_resnet.reflection' must be true/false"),
        ("model", " ", "'recipes.modern_resnet.model' must name a timm model"),
        ("drop_path", 0.1, "unknown key 'recipes.modern_resnet.drop_path'"),
    ],
)
def test_every_recipe_key_is_checked(params, key, value, message):
    params["recipes"]["modern_resnet"][key] = value
    with pytest.raises(ParamsError, match=re.escape(message)):
        validate(params)


def test_a_missing_recipe_key_and_odd_mixup_batches_are_named(params):
    broken = {**params["recipes"]["modern_resnet"]}
    del broken["schedule"]
    params["recipes"]["broken"] = broken
    with pytest.raises(ParamsError, match="missing key 'recipes.broken.schedule'"):
        validate(params)
    del params["recipes"]["broken"]
    params["recipes"]["modern_resnet"].update(mixup_alpha=0.2, batch_size=63)
    with pytest.raises(ParamsError, match="'recipes.modern_resnet.batch_size' must be even"):
        validate(params)


def test_a_recipe_cannot_take_a_report_rows_name(params):
    params["recipes"]["network_84_8153"] = params["recipes"]["modern_resnet"]
    with pytest.raises(ParamsError, match="'recipes.network_84_8153' has the name of a report"):
        validate(params)


def test_an_unknown_network_lists_the_recipes_too(params):
    params["network"] = "resnet_9000"
    with pytest.raises(ParamsError, match="'network' is 'resnet_9000'.*modern_resnet"):
        validate(params)


# --- model ----------------------------------------------------------------------------


def test_the_stem_stride_keeps_resolution_for_small_inputs():
    x = torch.rand(2, 3, 32, 32)
    for stride, side in ((4, 1), (2, 2), (1, 4)):
        net = build_timm_network("resnet10t", stride).eval()
        assert net[1].forward_features(net[0](x)).shape[-1] == side, stride
    with pytest.raises(ValueError, match="not a timm model"):
        build_timm_network("no_such_model")
    with pytest.raises(ValueError, match="no ResNet stem"):
        build_timm_network("mobilenetv3_small_050", 2)


def test_a_saved_recipe_model_loads_back_the_same(tmp_path, params):
    model = timm_model(params).eval()
    record = model_record(
        kind="timm", network="modern_resnet", input_size=SIZE, timm_model="resnet10t", stem_stride=2
    )
    save_model(tmp_path / "m.pt", model, record)
    loaded, _ = load_model(tmp_path / "m.pt")
    x = torch.rand(3, 3, SIZE, SIZE)
    assert torch.equal(model(x), loaded(x))


# --- training -------------------------------------------------------------------------


def test_one_epoch_trains_with_smoothing_mixup_and_a_per_batch_schedule(params):
    train, valid = tiny_set(40, 0, SIZE), tiny_set(20, 1, SIZE)
    cfg = recipe_config(params, max_epochs=1, warmup_epochs=0.5)
    result = fit(timm_model(params), train, valid, cfg, torch.device("cpu"))
    assert result.epochs_run == 1 and np.isfinite(result.history[0]["train/loss"])
    # The rate moved within the epoch: up, then down to near 0 at its last batch.
    assert result.history[0]["learn_rate"] < cfg.learn_rate / 100
    # Mixup and smoothing change what is learnt; without both the loss differs.
    plain = fit(
        timm_model(params),
        train,
        valid,
        replace(cfg, mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.0),
        torch.device("cpu"),
    )
    assert plain.history[0]["train/loss"] != result.history[0]["train/loss"]


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_the_schedules_rise_then_fall_to_zero(schedule):
    layer = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.01)
    cfg = config(schedule=schedule, learn_rate=0.01, max_epochs=4, warmup_epochs=1)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch=5)
    rates = []
    for _ in range(20):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    peak = rates.index(max(rates))
    assert 3 <= peak <= 5 and max(rates) == pytest.approx(0.01, rel=0.05)
    assert rates[-1] < 0.0005 and rates[peak:] == sorted(rates[peak:], reverse=True)


def timeless(history: list[dict]) -> list[dict]:
    """Each epoch's losses, accuracies and learning rate: all but the measured speed."""
    return [{k: v for k, v in r.items() if k != "train/images_per_s"} for r in history]


class StopAfter:
    """A dvclive stand-in that interrupts fit when epoch `epoch` is logged (before that
    epoch's checkpoint is written), as a kill would."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.steps = epoch, 0

    def log_metric(self, *args, **kwargs) -> None:
        pass

    def next_step(self) -> None:
        self.steps += 1
        if self.steps == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.e2e
def test_an_interrupted_recipe_resumes_bit_identically(tmp_path, params):
    train, valid = tiny_set(30, 0, SIZE), tiny_set(10, 1, SIZE)
    cfg = recipe_config(params, max_epochs=2)
    full = fit(timm_model(params), train, valid, cfg, torch.device("cpu"))
    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(
            timm_model(params),
            train,
            valid,
            cfg,
            torch.device("cpu"),
            live=StopAfter(2),
            checkpoint=checkpoint,
            fingerprint="same",
        )
    assert torch.load(checkpoint, weights_only=False)["state"]["epoch"] == 1
    torch.manual_seed(123)  # the resumed run must not depend on the global RNG state
    np.random.seed(123)
    resumed = fit(
        timm_model(params),
        train,
        valid,
        cfg,
        torch.device("cpu"),
        checkpoint=checkpoint,
        fingerprint="same",
    )
    assert timeless(resumed.history) == timeless(full.history)  # bit for bit
    for key, value in full.kept_state.items():
        assert torch.equal(value, resumed.kept_state[key]), key


@pytest.mark.e2e
def test_the_report_rows_train_as_before(tmp_path):
    """A report row's TrainConfig (no recipe fields) is the report's loop: the new fields'
    defaults change nothing, bit for bit, checkpoint resume included."""
    train, valid = tiny_set(40, 0), tiny_set(20, 1)
    cfg = config(max_epochs=3, augmentation=True, translation=2.0)
    defaults = replace(
        cfg,
        schedule="step",
        warmup_epochs=0.0,
        label_smoothing=0.0,
        mixup_alpha=0.0,
        cutmix_alpha=0.0,
        no_decay_1d=False,
    )
    first = fit(dropout_model(), train, valid, cfg, torch.device("cpu"))
    second = fit(dropout_model(), train, valid, defaults, torch.device("cpu"))
    assert timeless(first.history) == timeless(second.history)
    assert [r["learn_rate"] for r in first.history] == [0.1, 0.1, 0.05]  # per epoch
    for key, value in first.kept_state.items():
        assert torch.equal(value, second.kept_state[key]), key


# --- the stage, rows and report -------------------------------------------------------


@pytest.mark.e2e
def test_train_custom_trains_the_recipe_and_saves_a_usable_model(tmp_path, params):
    rng = np.random.default_rng(0)
    subsets = ["train"] * 40 + ["valid"] * 20 + ["test"] * 10
    paths = [f"x/{i}.JPEG" for i in range(len(subsets))]
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "split").mkdir(parents=True)
    images = rng.integers(0, 256, (len(paths), SIZE, SIZE, 3), dtype=np.uint8)
    np.save(tmp_path / "data" / "prepared" / "images.npy", images)
    labels = [i % 10 for i in range(len(paths))]
    pd.DataFrame({"path": paths, "label": labels}).to_csv(
        tmp_path / "data" / "prepared" / "index.csv", index=False
    )
    pd.DataFrame({"path": paths, "subset": subsets}).to_csv(
        tmp_path / "data" / "split" / "index.csv", index=False
    )
    params["network"] = "modern_resnet"
    params["data"]["input_size"] = SIZE
    params["train"]["max_epochs"] = 2
    params["recipes"]["modern_resnet"].update(batch_size=10, mixup_alpha=0.2, cutmix_alpha=1.0)
    params["runtime"]["device"] = "cpu"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run(
        stage_argv("train_custom"),
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    model, record = load_model(tmp_path / "data" / "models" / "custom.pt")
    assert record.kind == "timm" and record.network == "modern_resnet"
    assert record.train_config["schedule"] == "onecycle" and record.epochs_run == 2
    assert record.recipe["model"] == "resnet10t" and record.stem_stride == 2
    assert model(torch.rand(2, 3, SIZE, SIZE)).shape == (2, 10)


def test_the_recipe_is_queued_as_an_extra_row(params):
    checked = validate(params)
    overrides = row_overrides(checked, "modern_resnet", ["data.input_size=32"], seed=3)
    assert overrides == ["network=modern_resnet", "seed=3", "data.input_size=32"]
    # Without a size it takes the report's best row's (network_84_8153: 224 px).
    assert "data.input_size=224" in row_overrides(checked, "modern_resnet")
    with pytest.raises(ParamsError, match="unknown row 'resnet'.*modern_resnet"):
        row_overrides(checked, "resnet")


def test_the_report_table_shows_the_recipe_beside_the_rows(params):
    modern = experiment("modern_resnet", params, "network_84_8153", "sgdm", True, 0.55)
    modern["data"]["params"]["params.yaml"]["data"]["network"] = "modern_resnet"
    evaluation = modern["data"]["metrics"]["metrics/evaluation.json"]["data"]["custom"]
    evaluation["differs_in_row"] = "a modern recipe, not one of the report's rows"
    revs = [
        experiment("a", params, "network_84_8153", "sgdm", True, 0.42, train=0.45),
        experiment("b", params, "network_82_828", "adam", True, 0.52, train=0.55),
        modern,
    ]
    table = comparison_table(experiments_from_dvc(shown(*revs)), validate(params))
    line = table[table["network"] == "modern_resnet"].iloc[0]
    assert line["settings"] == "differs: 32 px"
    assert line["optimizer"] == "adamw" and not line["is_report_row"]
    assert line["model"] == "timm:resnet10t" and pd.isna(line["report_accuracy"])
    assert table["settings"].nunique() == 1  # one group: beside the report's rows
