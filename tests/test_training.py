import pytest
import torch
from torch import nn

from imagenette_repro.data.batches import ImageSet
from imagenette_repro.models.networks import build_custom_network
from imagenette_repro.params import validate
from imagenette_repro.runtime import Runtime
from imagenette_repro.train.loop import (
    EarlyStopping,
    TrainConfig,
    TrainingDiverged,
    fit,
    make_optimizer,
    parameter_groups,
)
from imagenette_repro.train.settings import custom_training, finetune_training


def tiny_set(n: int, seed: int, size: int = 8) -> ImageSet:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=generator)
    labels = torch.arange(n) % 10
    return ImageSet(images, labels)


def config(**changes) -> TrainConfig:
    values = dict(
        optimizer="sgdm",
        learn_rate=0.1,
        batch_size=10,
        max_epochs=7,
        patience=None,
        drop_period=2,
        drop_rate_factor=0.5,
        weight_decay=0.0,
    )
    values.update(changes)
    return TrainConfig(**values)


def linear_model(size: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 10))


def dropout_model(size: int = 8) -> nn.Module:
    """Draws from torch's global RNG in every step: resuming must restore it."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * size * size, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10)
    )


def test_piecewise_schedule_matches_the_report_formula():
    cfg = config(learn_rate=0.001, drop_period=3, drop_rate_factor=0.65, max_epochs=8)
    result = fit(linear_model(), tiny_set(20, 0), tiny_set(10, 1), cfg, torch.device("cpu"))
    used = [record["learn_rate"] for record in result.history]
    expected = [0.001 * 0.65 ** ((epoch - 1) // 3) for epoch in range(1, 9)]
    assert used == pytest.approx(expected, rel=1e-12)


def test_validation_patience_counts_losses_not_below_the_best_as_matlab_does():
    # MATLAB's ValidationPatience: a loss equal to the best so far counts, a lower one
    # resets the count; the run stops when the count reaches the patience.
    losses = [2.0, 1.5, 1.6, 1.5, 1.4, 1.4, 1.45, 1.5, 1.3]
    stopping = EarlyStopping(3, "loss")
    stops = [stopping.update(loss, accuracy=0.0) for loss in losses]
    assert stops.index(True) + 1 == 8  # epochs 6, 7, 8 are not below 1.4
    assert stopping.count == 0  # 1.3 is below the best: the count starts again


def test_the_loss_rule_stops_where_the_accuracy_rule_goes_on():
    losses, accuracies = [1.0, 1.1, 1.2, 1.3], [0.5, 0.6, 0.7, 0.8]  # overconfident, better
    on_loss, on_accuracy = EarlyStopping(3, "loss"), EarlyStopping(3, "accuracy")
    assert [on_loss.update(v, a) for v, a in zip(losses, accuracies, strict=True)][-1]
    assert not any(on_accuracy.update(v, a) for v, a in zip(losses, accuracies, strict=True))
    assert not any(EarlyStopping(None).update(v, 0.0) for v in [1.0] * 50)


def expected_stop(history: list[dict], patience: int, key: str = "valid/loss") -> int | None:
    """The epoch at which MATLAB's rule stops, from the recorded validations."""
    best, count = float("inf"), 0
    for record in history:
        if record[key] < best:
            best, count = record[key], 0
        else:
            count += 1
        if count >= patience:
            return record["epoch"]
    return None


def test_patience_stops_after_that_many_validations_without_a_lower_loss():
    # A zero learning rate leaves the loss where it is: only epoch 1 is below the best.
    cfg = config(learn_rate=0.0, patience=3, max_epochs=30)
    result = fit(linear_model(), tiny_set(20, 0), tiny_set(10, 1), cfg, torch.device("cpu"))
    assert result.epochs_run == 4
    assert result.best_loss_epoch == 1
    assert result.stopped_early


def test_fit_stops_where_the_rule_says_on_its_own_validation_losses():
    # A rate this high makes the validation loss go up and down.
    cfg = config(learn_rate=2.0, patience=2, max_epochs=30, drop_period=100)
    result = fit(linear_model(), tiny_set(40, 0), tiny_set(20, 1), cfg, torch.device("cpu"))
    assert result.stopped_early
    assert result.epochs_run == expected_stop(result.history, 2) < 30


def valid_measures(model: nn.Module, state: dict, valid: ImageSet) -> tuple[float, float]:
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        logits = model(valid.images.permute(0, 3, 1, 2).float() / 255)
    accuracy = (logits.argmax(1) == valid.labels).float().mean().item()
    return nn.functional.cross_entropy(logits, valid.labels).item(), accuracy


@pytest.mark.parametrize("keep", ["final", "best_loss", "best_accuracy"])
def test_the_kept_weights_are_those_keep_names(keep):
    train, valid = tiny_set(40, 0), tiny_set(20, 1)
    cfg = config(learn_rate=0.5, max_epochs=6, drop_period=10, drop_rate_factor=1.0, keep=keep)
    model = linear_model()
    result = fit(model, train, valid, cfg, torch.device("cpu"))
    losses = [record["valid/loss"] for record in result.history]
    accuracies = [record["valid/accuracy"] for record in result.history]
    epochs = {
        "final": len(losses),
        "best_loss": losses.index(min(losses)) + 1,
        "best_accuracy": accuracies.index(max(accuracies)) + 1,
    }
    expected_epoch = epochs[keep]
    assert result.kept_epoch == expected_epoch
    loss, accuracy = valid_measures(model, result.kept_state, valid)
    assert loss == pytest.approx(losses[expected_epoch - 1], rel=1e-5)
    assert accuracy == accuracies[expected_epoch - 1]
    # On this run the choices pick different epochs, so the test tells them apart.
    assert len(set(epochs.values())) > 1


def test_no_weight_decay_on_conv_and_fc_biases(repo_params):
    model = build_custom_network(repo_params["architectures"]["network_83_2611"], 32)
    optimizer = make_optimizer(
        parameter_groups(model, config(weight_decay=0.1)), config(weight_decay=0.1, learn_rate=1.0)
    )
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # only the L2 term moves a parameter
    optimizer.step()
    modules = dict(model.named_modules())
    for name, p in model.named_parameters():
        owner = modules[name.rsplit(".", 1)[0]]
        moved = not torch.equal(before[name], p)
        is_layer_bias = name.endswith("bias") and isinstance(owner, (nn.Conv2d, nn.Linear))
        if is_layer_bias:
            assert not moved, name
        elif p.abs().sum() > 0:
            assert moved, name  # weights and batch-norm parameters decay (MATLAB default)


def test_new_layer_learns_at_its_factor():
    model = linear_model()
    cfg = config(learn_rate=0.01, new_layer_lr_factor=10)
    groups = parameter_groups(model, cfg, new_layer=list(model[1].parameters()))
    assert sorted(group["lr"] for group in groups) == [0.1, 0.1]
    groups = parameter_groups(model, cfg)
    assert sorted(group["lr"] for group in groups) == [0.01, 0.01]


def test_resume_from_a_checkpoint_gives_the_same_result(tmp_path):
    train, valid = tiny_set(40, 0), tiny_set(20, 1)
    cfg = config(max_epochs=4, augmentation=True, translation=2.0)
    checkpoint = tmp_path / "ckpt.pt"
    full = fit(dropout_model(), train, valid, cfg, torch.device("cpu"))
    fit(
        dropout_model(),
        train,
        valid,
        config(max_epochs=2, augmentation=True, translation=2.0),
        torch.device("cpu"),
        checkpoint=checkpoint,
        fingerprint="same",
    )
    # Same parameters otherwise: the 2-epoch checkpoint is resumed to 4 epochs.
    saved = torch.load(checkpoint, weights_only=False)
    saved["state"]["finished"] = False
    torch.save(saved, checkpoint)
    resumed = fit(
        dropout_model(),
        train,
        valid,
        cfg,
        torch.device("cpu"),
        checkpoint=checkpoint,
        fingerprint="same",
    )
    assert [r["valid/loss"] for r in resumed.history] == [r["valid/loss"] for r in full.history]
    for key, value in full.kept_state.items():
        assert torch.equal(value, resumed.kept_state[key]), key


def test_checkpoint_from_other_parameters_is_not_resumed(tmp_path):
    train, valid = tiny_set(40, 0), tiny_set(20, 1)
    checkpoint = tmp_path / "ckpt.pt"
    fit(
        linear_model(),
        train,
        valid,
        config(max_epochs=2),
        torch.device("cpu"),
        checkpoint=checkpoint,
        fingerprint="a",
    )
    result = fit(
        linear_model(),
        train,
        valid,
        config(max_epochs=3),
        torch.device("cpu"),
        checkpoint=checkpoint,
        fingerprint="b",
    )
    assert [r["epoch"] for r in result.history] == [1, 2, 3]


def test_a_finished_checkpoint_is_kept_not_trained_again(tmp_path, capsys):
    """A run whose last epoch finished but whose model was not saved (a full disk) gets
    the finished weights back from its checkpoint instead of training again."""
    train, valid = tiny_set(40, 0), tiny_set(20, 1)
    checkpoint = tmp_path / "ckpt.pt"
    first = fit(
        linear_model(),
        train,
        valid,
        config(max_epochs=2),
        torch.device("cpu"),
        checkpoint=checkpoint,
        fingerprint="a",
    )
    other_init = linear_model()
    torch.nn.init.constant_(other_init[-1].weight, 0.5)
    again = fit(
        other_init,
        train,
        valid,
        config(max_epochs=2),
        torch.device("cpu"),
        checkpoint=checkpoint,
        fingerprint="a",
    )
    assert "holds this run finished after epoch 2" in capsys.readouterr().err
    assert again.history == first.history
    for key, value in first.kept_state.items():
        assert torch.equal(value, again.kept_state[key]), key


def test_an_unreadable_checkpoint_is_replaced(tmp_path):
    checkpoint = tmp_path / "ckpt.pt"
    checkpoint.write_bytes(b"cut short")
    result = fit(
        linear_model(),
        tiny_set(20, 0),
        tiny_set(10, 1),
        config(max_epochs=1),
        torch.device("cpu"),
        checkpoint=checkpoint,
        fingerprint="a",
    )
    assert result.epochs_run == 1
    assert torch.load(checkpoint, weights_only=False)["fingerprint"] == "a"


def test_checkpoint_code_fingerprint_covers_only_the_code_the_training_runs(tmp_path):
    import shutil
    import subprocess
    import sys

    from .conftest import ROOT

    package = tmp_path / "src" / "imagenette_repro"
    shutil.copytree(ROOT / "src" / "imagenette_repro", package)
    script = "from imagenette_repro.train.stage import code_fingerprint as f; print(f())"

    def fingerprint() -> str:
        env = {"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"}
        return subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    def edit(module: str) -> None:
        path = package / module
        path.write_text(path.read_text() + "\n# edited\n")  # fails if the module is gone

    first = fingerprint()
    edit("report/comparison.py")  # not run by training
    assert fingerprint() == first
    edit("data/batches.py")  # run by training
    assert fingerprint() != first


class BreaksAfter(nn.Module):
    """A linear model whose outputs turn to NaN after `steps` training steps."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.linear, self.steps, self.calls = linear_model(), steps, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += self.training
        out = self.linear(x)
        return out * float("nan") if self.calls > self.steps else out


@pytest.mark.parametrize(
    ("precision", "learn_rate_param", "advice"),
    [
        ("fp32", "learn_rate", "(lower learn_rate in params.yaml)"),
        (
            "bf16",
            "googlenet.learn_rate",
            "(lower googlenet.learn_rate in params.yaml, or set runtime.precision: fp32 "
            "(this run: bf16))",
        ),
    ],
)
def test_a_diverged_run_stops_with_its_epoch_and_keeps_the_last_good_checkpoint(
    tmp_path, precision, learn_rate_param, advice
):
    checkpoint = tmp_path / "ckpt.pt"
    train, valid = tiny_set(40, 0), tiny_set(20, 1)  # 4 steps an epoch at batch 10
    with pytest.raises(TrainingDiverged) as raised:
        fit(
            BreaksAfter(steps=4),
            train,
            valid,
            config(max_epochs=5, learn_rate_param=learn_rate_param),
            torch.device("cpu"),
            checkpoint=checkpoint,
            fingerprint="f",
            runtime=Runtime(precision=precision),
        )
    message = str(raised.value)
    assert "training loss of epoch 2 is nan" in message
    assert f"diverged at learning rate 0.1 {advice}" in message
    assert "the checkpoint after epoch 1 is kept" in message
    assert torch.load(checkpoint, weights_only=False)["state"]["epoch"] == 1


def test_each_training_names_the_param_that_sets_its_learning_rate(params):
    checked = validate(params)
    assert custom_training(checked, 32).learn_rate_param == "learn_rate"
    assert finetune_training(checked, 32).learn_rate_param == "googlenet.learn_rate"
    recipe = custom_training(validate({**params, "network": "modern_resnet"}), 32)
    assert recipe.learn_rate_param == "recipes.modern_resnet.learn_rate"
