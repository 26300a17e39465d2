"""fastai's record recipe as options of the recipes (params.yaml `recipes.fastai_5ep`):
Ranger, the flat-then-cosine schedule, flips alone, unscaled inputs, timm's model
arguments; each option's effect, its checks, and the ablate-* profiles that lead to it."""

import io
import math
import os
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from timm.layers import BlurPool2d
from timm.optim import Lookahead

from imagenette_repro.data.batches import random_flip, to_input
from imagenette_repro.data.dataset import decode_image
from imagenette_repro.experiments.catalogue import (
    apply_overrides,
    assignments,
    load_catalogue,
    overrides,
)
from imagenette_repro.inference.predict import classify
from imagenette_repro.models.networks import build_timm_network
from imagenette_repro.models.record import save_model
from imagenette_repro.models.saved import load_model
from imagenette_repro.params import ParamsError, validate
from imagenette_repro.train.loop import (
    LOOKAHEAD_ALPHA,
    LOOKAHEAD_K,
    fit,
    make_optimizer,
    make_scheduler,
    parameter_groups,
)
from imagenette_repro.train.settings import recipe_training, report_row_training

from .conftest import ROOT, model_record, write_jpeg
from .scratch import stage_argv
from .test_recipe import StopAfter, timeless
from .test_training import config, tiny_set

SIZE = 16
RECIPE = "fastai_5ep"


def fastai(params: dict, **changes) -> dict:
    """params with `network: fastai_5ep` and `changes` to its recipe."""
    params["network"] = RECIPE
    params["recipes"][RECIPE].update(changes)
    return params


def fastai_config(params: dict, **changes):
    """fastai_5ep's training as train_custom builds it, made tiny (batch 10)."""
    built = recipe_training(validate(fastai(params)), SIZE)
    return replace(built, **{"batch_size": 10, "max_epochs": 2, **changes})


def fastai_model(params: dict, **changes) -> torch.nn.Module:
    torch.manual_seed(0)
    recipe = {**params["recipes"][RECIPE], **changes}
    return build_timm_network(recipe["model"], 2, 10, recipe["model_args"], recipe["input_scaling"])


def profile_params(raw: dict, name: str):
    """The checked params of an experiments.yaml profile, as its printed -S set them."""
    return validate(apply_overrides(raw, assignments(overrides([name]))))


# --- params ---------------------------------------------------------------------------


def test_the_repository_recipe_is_fastais(params):
    checked = validate(fastai(params))
    cfg = recipe_training(checked, 128)
    assert (cfg.optimizer, cfg.learn_rate, cfg.weight_decay) == ("ranger", 0.008, 0.01)
    assert (cfg.betas, cfg.epsilon, cfg.no_decay_1d) == ((0.95, 0.99), 1e-6, True)
    assert (cfg.schedule, cfg.flat_fraction, cfg.warmup_epochs) == ("flat_cos", 0.75, 0)
    assert (cfg.batch_size, cfg.label_smoothing) == (32, 0.1)
    assert (cfg.augmentation, cfg.crop_area_min, cfg.reflection) == (False, None, True)
    assert checked.recipe.input_scaling == "none" and checked.recipe.stem_stride == 4


def test_the_other_recipes_keep_their_settings_and_dump_as_written(params, repo_params):
    """The new options default to today's behaviour, and a recipe that leaves them out
    dumps (records, fingerprints, compares with recorded runs) as it did."""
    checked = validate(params)
    for name in ("modern_resnet", "imagenette_128"):
        assert checked.recipes[name].model_dump() == repo_params["recipes"][name]
        recipe = checked.recipes[name]
        assert (recipe.input_scaling, recipe.model_args, recipe.betas, recipe.eps) == (
            "imagenet",
            {},
            None,
            None,
        )
        params["network"] = name
        cfg = recipe_training(validate(params), 128)
        train = params["train"]
        assert cfg.betas == (train["adam_beta1"], train["adam_beta2"])
        assert cfg.epsilon == train["adam_epsilon"]
    assert checked.recipes[RECIPE].model_dump() == repo_params["recipes"][RECIPE]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("optimizer", "rangr", "'recipes.fastai_5ep.optimizer' is 'rangr'; allowed: adamw, "),
        ("optimizer", "rangr", "sgd_nesterov, ranger"),
        ("schedule", "flat_cosine", "'recipes.fastai_5ep.schedule' is 'flat_cosine'; allowed:"),
        ("schedule", "flat_cosine", "cosine, onecycle, flat_cos"),
        ("flat_fraction", 1.0, "'recipes.fastai_5ep.flat_fraction' must be in [0, 1)"),
        ("input_scaling", "unit", "'recipes.fastai_5ep.input_scaling' is 'unit'; allowed:"),
        ("input_scaling", "unit", "imagenet, none"),
        ("betas", [0.9], "'recipes.fastai_5ep.betas' must have at least 2 items, got [0.9]"),
        ("betas", [0.9, 0.9, 0.9], "'recipes.fastai_5ep.betas' must have at most 2 items"),
        ("betas", [0.9, 1.5], "'recipes.fastai_5ep.betas' must be in [0, 1), got 1.5"),
        ("eps", 0.0, "'recipes.fastai_5ep.eps' must be > 0"),
        ("model_args", "mish", "'recipes.fastai_5ep.model_args' must be a mapping"),
        (
            "model_args",
            {"act_layer": "mishh"},
            "'recipes.fastai_5ep.model_args' does not fit timm's resnet10t: act_layer "
            "'mishh' is not one of timm's activations",
        ),
        (
            "model_args",
            {"aa_layer": "blur"},
            "'recipes.fastai_5ep.model_args' does not fit timm's resnet10t: aa_layer is "
            "'blur'; allowed: null, blurpool, avgpool",
        ),
        (
            "model_args",
            {"act_layr": "mish"},
            "'recipes.fastai_5ep.model_args' does not fit timm's resnet10t: ",
        ),
        (
            "model_args",
            {"block_args": {"attn_layer": "sex"}},
            "'recipes.fastai_5ep.model_args' does not fit timm's resnet10t: Invalid attn",
        ),
        ("model", "resnet_9000", "'recipes.fastai_5ep.model' is 'resnet_9000', not a timm"),
    ],
)
def test_bad_options_are_named(params, key, value, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        validate(fastai(params, **{key: value}))


def test_every_profile_validates_and_the_ablations_add_one_ingredient_each(params, repo_params):
    for name in load_catalogue():
        profile_params(repo_params, name)  # a ParamsError fails the test
    base = profile_params(repo_params, "recipe-128px").recipe
    path = ["ablate-optimiser", "ablate-augmentation", "ablate-batch", "ablate-input-scaling"]
    path += ["ablate-store", "ablate-val-crop", "ablate-network", "ablate-mish"]
    path += ["ablate-blurpool"]
    ingredients = [
        {"optimizer", "learn_rate", "weight_decay", "schedule", "warmup_epochs"}
        | {"betas", "eps", "model_args"},  # model_args: timm's defaults, written out
        {"augmentation", "crop_area_min"},
        {"batch_size"},
        {"input_scaling"},
        {"train_size"},
        {"val_crop"},
        {"model"},
        {"model_args"},
        {"model_args"},
    ]
    before, store = dict(base), 128
    for name, expected in zip(path, ingredients, strict=True):
        checked = profile_params(repo_params, name)
        recipe = dict(checked.recipe)
        changed = {key for key in recipe if recipe[key] != before.get(key)}
        assert changed == expected, name
        # The store grows with the network's side kept: only the store step changes it.
        assert (checked.data.input_size != store) == (name == "ablate-store"), name
        assert (checked.recipe.train_size or checked.data.input_size) == 128, name
        before, store = recipe, checked.data.input_size
    written = validate(fastai(params)).recipe
    assert dict(profile_params(repo_params, "ablate-input-scaling").recipe) == dict(written)
    assert before["model_args"] == {"act_layer": "mish", "aa_layer": "blurpool"}


def test_the_command_prints_overrides_that_validate(tmp_path, repo_params):
    printed = subprocess.run(
        [sys.executable, "-m", "imagenette_repro.experiments", "ablate-network"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    ).stdout.splitlines()
    checked = validate(apply_overrides(repo_params, printed[1::2]))
    assert checked.network == RECIPE and checked.recipe.model == "seresnext26d_32x4d"


# --- Ranger ---------------------------------------------------------------------------


def ranger(model: torch.nn.Module, steps_per_epoch: int = 5, **changes):
    """fastai's Ranger and flat_cos on `model` (by default 4 epochs of 5 steps: flat for
    15, then annealed)."""
    values = dict(learn_rate=0.01, weight_decay=0.01, betas=(0.95, 0.99), epsilon=1e-6)
    values |= dict(optimizer="ranger", schedule="flat_cos", max_epochs=4, no_decay_1d=True)
    cfg = config(**{**values, **changes})
    optimizer = make_optimizer(parameter_groups(model, cfg), cfg)
    return optimizer, make_scheduler(optimizer, cfg, steps_per_epoch)


def test_ranger_is_radam_with_decoupled_decay_inside_lookahead():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer, _ = ranger(model)
    assert isinstance(optimizer, Lookahead)
    radam = optimizer._base_optimizer
    assert isinstance(radam, torch.optim.RAdam) and optimizer.param_groups is radam.param_groups
    for group in radam.param_groups:
        assert group["decoupled_weight_decay"] and group["betas"] == (0.95, 0.99)
        assert group["eps"] == 1e-6
        assert (group["lookahead_k"], group["lookahead_alpha"]) == (6, 0.5)
        decays = {p.ndim: group["weight_decay"] for p in group["params"]}
        assert decays == ({2: 0.01} if 2 in decays else {1: 0.0})  # none on norm and bias
    assert (LOOKAHEAD_K, LOOKAHEAD_ALPHA) == (6, 0.5)


def steps(model, optimizer, scheduler, count: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        x = torch.randn(8, 4, generator=generator)
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def test_rangers_state_and_its_schedule_save_and_load_exactly():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer, scheduler = ranger(model)
    steps(model, optimizer, scheduler, 8, seed=1)  # past a Lookahead sync (k = 6)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    state = saved["optimizer"]
    assert all(group["lookahead_step"] == 8 for group in state["param_groups"])
    assert all("lookahead_slow_buff" in s for s in state["state"].values())
    copy = torch.nn.Linear(4, 3)
    copy.load_state_dict(model.state_dict())
    loaded, loaded_scheduler = ranger(copy)
    loaded.load_state_dict(state)
    loaded_scheduler.load_state_dict(saved["scheduler"])
    # The schedule drives the wrapped RAdam's groups, also after the load replaced them.
    assert loaded._base_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    steps(model, optimizer, scheduler, 9, seed=2)  # another sync at step 12, into the cosine
    steps(copy, loaded, loaded_scheduler, 9, seed=2)
    assert torch.equal(model.weight, copy.weight) and torch.equal(model.bias, copy.bias)
    assert loaded._base_optimizer.param_groups[0]["lr"] == pytest.approx(
        0.01 * 0.5 * (1 + math.cos(math.pi * 2 / 5)), rel=1e-12
    )


@pytest.mark.e2e
def test_an_interrupted_fastai_run_resumes_bit_identically(tmp_path, params):
    train, valid = tiny_set(30, 0, SIZE), tiny_set(10, 1, SIZE)
    cfg = fastai_config(params)
    full = fit(fastai_model(params), train, valid, cfg, torch.device("cpu"))
    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(
            fastai_model(params),
            train,
            valid,
            cfg,
            torch.device("cpu"),
            live=StopAfter(2),
            checkpoint=checkpoint,
            fingerprint="same",
        )
    resumed = fit(
        fastai_model(params),
        train,
        valid,
        cfg,
        torch.device("cpu"),
        checkpoint=checkpoint,
        fingerprint="same",
    )
    assert timeless(resumed.history) == timeless(full.history)
    for key, value in full.kept_state.items():
        assert torch.equal(value, resumed.kept_state[key]), key


# --- flat_cos -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fraction", "warmup", "expected"),
    [
        # 40 steps: flat to step 30, then half a cosine over the last 10.
        (0.75, 0, {0: 1.0, 29: 1.0, 30: 1.0, 35: 0.5, 39: 0.5 * (1 + math.cos(0.9 * math.pi))}),
        (0.5, 0, {19: 1.0, 20: 1.0, 30: 0.5, 39: 0.5 * (1 + math.cos(0.95 * math.pi))}),
        # warmup (10 steps) before the flat part: fastai's has none.
        (0.75, 1, {0: 1 / 11, 9: 10 / 11, 10: 1.0, 29: 1.0, 35: 0.5}),
        (0.0, 0, {0: 1.0, 20: 0.5}),  # no flat part: the cosine schedule
    ],
)
def test_flat_cos_holds_the_peak_then_anneals_to_zero(fraction, warmup, expected):
    model = torch.nn.Linear(2, 2)
    optimizer, scheduler = ranger(model, 10, flat_fraction=fraction, warmup_epochs=warmup)
    rates = []
    for _ in range(40):
        rates.append(optimizer._base_optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    for step, factor in expected.items():
        assert rates[step] == pytest.approx(0.01 * factor, rel=1e-9, abs=1e-15), step
    assert rates[-1] < 0.0005 and optimizer.param_groups[0]["lr"] < 1e-12


# --- flips alone ----------------------------------------------------------------------


def test_flips_alone_mirror_some_images_and_move_no_pixel():
    x = torch.rand(16, 3, 5, 7).contiguous(memory_format=torch.channels_last)
    flipped = random_flip(x, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(a, b.flip(2)) for a, b in zip(flipped, x, strict=True)]
    same = [torch.equal(a, b) for a, b in zip(flipped, x, strict=True)]
    assert all(m != s for m, s in zip(mirrored, same, strict=True))  # one or the other
    assert 0 < sum(mirrored) < 16 and flipped.is_contiguous(memory_format=torch.channels_last)
    # A process's share (DDP) is flipped as in the whole batch.
    share = random_flip(x, torch.Generator().manual_seed(0), slice(4, 8))
    assert torch.equal(share, flipped[4:8])


class Recorder(torch.nn.Module):
    """A linear model that keeps every training input it sees."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3 * size * size, 10)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return self.linear(x.flatten(1))


@pytest.mark.parametrize("reflection", [True, False])
def test_without_augmentation_the_loop_flips_alone_or_does_nothing(reflection):
    train = tiny_set(20, 0, SIZE)
    cfg = config(batch_size=10, max_epochs=2, augmentation=False, reflection=reflection)
    model = Recorder(SIZE)
    fit(model, train, tiny_set(10, 1, SIZE), cfg, torch.device("cpu"))
    originals = to_input(train.images, torch.device("cpu"))
    seen = torch.cat(model.seen)
    assert len(seen) == 40
    kinds = []
    for image in seen:
        if any(torch.equal(image, original) for original in originals):
            kinds.append("as is")
        else:
            assert any(torch.equal(image, original.flip(2)) for original in originals)
            kinds.append("mirrored")
    assert ("mirrored" in kinds) == reflection and "as is" in kinds


def test_the_report_rows_reflect_only_with_their_augmentation(params):
    params["train"]["reflection"] = True
    params["image_augmentation"] = False
    assert not report_row_training(validate(params), 224).reflection
    params["image_augmentation"] = True
    assert report_row_training(validate(params), 224).reflection


# --- input scaling --------------------------------------------------------------------


def test_input_scaling_none_gives_the_network_the_images_in_0_1():
    images = torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8)
    x = to_input(images, torch.device("cpu"))
    for scaling, unchanged in (("none", True), ("imagenet", False)):
        model = build_timm_network("resnet10t", 2, input_scaling=scaling).eval()
        received = []
        model[1].register_forward_pre_hook(lambda _, args, r=received: r.append(args[0]))
        model(x)
        assert torch.equal(received[0], x) == unchanged, scaling
        assert (0 <= received[0].min() and received[0].max() <= 1) == unchanged, scaling
    with pytest.raises(ValueError, match="input_scaling is 'unit'; allowed: imagenet, none"):
        build_timm_network("resnet10t", input_scaling="unit")


def test_a_model_trained_unscaled_saves_loads_and_predicts_the_same(tmp_path, params):
    train, valid = tiny_set(20, 0, SIZE), tiny_set(10, 1, SIZE)
    model = fastai_model(params, model_args={"act_layer": "mish"})
    fit(model, train, valid, fastai_config(params, max_epochs=1), torch.device("cpu"))
    model.eval()
    record = model_record(
        kind="timm",
        network=RECIPE,
        input_size=SIZE,
        timm_model="resnet10t",
        stem_stride=2,
        model_args={"act_layer": "mish"},
    )
    save_model(tmp_path / "m.pt", model, record)
    loaded, read = load_model(tmp_path / "m.pt")
    assert read.model_args == {"act_layer": "mish"}
    assert any(isinstance(m, torch.nn.Mish) for m in loaded.modules())
    assert torch.equal(loaded[0].mean, torch.zeros(3, 1, 1))  # the scaling came with it
    assert torch.equal(loaded[0].std, torch.ones(3, 1, 1))
    for index in range(3):
        write_jpeg(tmp_path / "images" / f"{index}.jpg", index, size=SIZE)
    files = sorted((tmp_path / "images").glob("*.jpg"))
    images = torch.from_numpy(np.stack([decode_image(path, SIZE) for path in files]))
    with torch.inference_mode():
        expected = model(to_input(images, torch.device("cpu"))).softmax(1)
    results = list(classify(loaded, read, files, top=1))
    assert [r["predictions"][0]["label"] for r in results] == expected.argmax(1).tolist()
    probabilities = [r["predictions"][0]["probability"] for r in results]
    assert probabilities == pytest.approx(expected.max(1).values.tolist(), abs=1e-6)


# --- timm's model arguments -----------------------------------------------------------


def module_types(model: torch.nn.Module) -> set[type]:
    return {type(module) for module in model.modules()}


def test_model_args_reach_the_timm_model():
    from timm.layers import SEModule

    plain = module_types(build_timm_network("resnet10t"))
    assert not plain & {torch.nn.Mish, BlurPool2d, SEModule}
    args = {"act_layer": "mish", "aa_layer": "blurpool", "block_args": {"attn_layer": "se"}}
    model = build_timm_network("resnet10t", 4, 10, args)
    assert {torch.nn.Mish, BlurPool2d, SEModule} <= module_types(model)
    stem = model[1].maxpool  # MaxBlurPool: a stride-1 max-pool, then a stride-2 blur
    assert [type(m) for m in stem] == [torch.nn.MaxPool2d, BlurPool2d]
    assert stem[0].stride == 1 and stem[1].stride == 2
    block = model[1].layer1[0]
    assert isinstance(block.act1, torch.nn.Mish) and isinstance(block.act2, torch.nn.Mish)
    # stem_stride 2 drops the anti-aliased pool as it drops the max-pool.
    assert isinstance(build_timm_network("resnet10t", 2, 10, args)[1].maxpool, torch.nn.Identity)
    with pytest.raises(ValueError, match="do not fit timm's resnet10t: .*'act_layr'"):
        build_timm_network("resnet10t", 4, 10, {"act_layr": "mish"})


@pytest.mark.parametrize("name", ["seresnext26d_32x4d", "seresnext26t_32x4d"])
def test_an_se_resnext_with_mish_and_blurpool_builds_at_128_px(name):
    args = {"act_layer": "mish", "aa_layer": "blurpool"}
    model = build_timm_network(name, 4, 10, args, "none").eval()
    assert {torch.nn.Mish, BlurPool2d} <= module_types(model)
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 128, 128)).shape == (1, 10)


# --- a run of the recipe --------------------------------------------------------------


def test_the_recipe_trains_through_fit(params):
    train, valid = tiny_set(40, 0, SIZE), tiny_set(20, 1, SIZE)
    cfg = fastai_config(params, max_epochs=2)
    result = fit(fastai_model(params), train, valid, cfg, torch.device("cpu"))
    assert result.epochs_run == 2
    assert all(np.isfinite(r["train/loss"]) for r in result.history)
    # 4 steps an epoch, flat for 6: each epoch's last step at the peak, then half of it.
    rates = [r["learn_rate"] for r in result.history]
    assert rates == pytest.approx([cfg.learn_rate, cfg.learn_rate / 2], rel=1e-12)


@pytest.mark.e2e
def test_train_custom_trains_the_fastai_recipe(tmp_path, params):
    rng = np.random.default_rng(0)
    subsets = ["train"] * 40 + ["valid"] * 20
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
    fastai(params, batch_size=10, stem_stride=2, model_args={"act_layer": "mish"})
    params["data"]["input_size"] = SIZE
    params["train"]["max_epochs"] = 1
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
    assert record.network == RECIPE and record.model_args == {"act_layer": "mish"}
    assert record.train_config["optimizer"] == "ranger" and record.normalization.startswith("none")
    assert record.recipe["input_scaling"] == "none"
    assert torch.equal(model[0].std, torch.ones(3, 1, 1))
    assert any(isinstance(m, torch.nn.Mish) for m in model.modules())
