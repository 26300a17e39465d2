"""One training loop for both train stages: optimiser, schedule, early stopping,
per-epoch checkpoints to resume from, and dvclive curves."""

from __future__ import annotations

import copy
import io
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.batches import (
    ImageSet,
    augment,
    batches,
    centre_view,
    place,
    random_flip,
    random_resized_crop,
    to_input,
)
from ..data.classes import NUM_CLASSES
from ..distributed import World
from ..errors import UserError
from ..files import WriteError, replacing
from ..inference.evaluation import predict
from ..params import ParamsError
from ..progress import Progress
from ..runtime import Runtime


@dataclass
class TrainConfig:
    optimizer: str  # sgdm | adam | adamw | sgd_nesterov | ranger
    learn_rate: float
    batch_size: int
    max_epochs: int
    patience: int | None  # validations in a row without improvement; None: never stop
    drop_period: int = 1  # schedule step: lr *= drop_rate_factor every drop_period epochs
    drop_rate_factor: float = 1.0
    weight_decay: float = 0.0
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    epsilon: float = 1e-8
    augmentation: bool = False
    crop_area_min: float | None = None  # a number: random-resized crops instead of scale/shift
    scale: tuple[float, float] = (0.9, 1.1)
    translation: float = 30.0  # pixels at the input size
    reflection: bool = False  # random horizontal flips; without augmentation: flips alone
    # The network's input side (None: the stored images'); from a larger store, crops and
    # resizes are taken at full detail. Validation sees the centre val_crop of the side.
    side: int | None = None
    val_crop: float = 1.0
    seed: int = 0
    new_layer_lr_factor: float = 1.0
    patience_on: str = "loss"  # loss (MATLAB's ValidationPatience) | accuracy
    keep: str = "final"  # final (R2018b's trainNetwork) | best_loss | best_accuracy
    # A modern recipe's settings (params.yaml `recipes`); the defaults are the report's.
    schedule: str = "step"  # step (drop_period, drop_rate_factor) | cosine | onecycle | flat_cos
    warmup_epochs: float = 0.0  # cosine, flat_cos: linear warmup; onecycle: the rising part
    flat_fraction: float = 0.75  # flat_cos: the share of all steps at the peak rate
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0  # timm's batch Mixup / CutMix (0: off)
    cutmix_alpha: float = 0.0
    no_decay_1d: bool = False  # no weight decay on any bias or norm parameter (timm's rule)
    learn_rate_param: str = "learn_rate"  # where params.yaml sets learn_rate (for messages)


class TrainingDiverged(UserError, RuntimeError):
    """The training loss stopped being a number: the run diverged."""


@dataclass
class FitResult:
    kept_state: dict  # the weights `keep` chose
    kept_epoch: int
    kept: str  # which: config.keep, or the final ones when that found no epoch
    epochs_run: int
    stopped_early: bool
    best_loss_epoch: int  # the epoch of the lowest validation loss
    best_accuracy_epoch: int  # the epoch of the highest validation accuracy
    history: list[dict] = field(default_factory=list)


class EarlyStopping:
    """MATLAB's ValidationPatience, validating once per epoch: count the validations in a
    row whose loss is not below the smallest so far (on "accuracy": whose accuracy is not
    above the highest so far), and stop when the count reaches `patience` (None: never)."""

    def __init__(self, patience: int | None, on: str = "loss") -> None:
        if on not in ("loss", "accuracy"):
            raise ValueError(f"patience_on is {on!r}; allowed: loss, accuracy")
        self.patience, self.on = patience, on
        self.best = math.inf if on == "loss" else -math.inf
        self.count = 0

    def update(self, loss: float, accuracy: float) -> bool:
        """Record one validation; True when training should stop."""
        value = loss if self.on == "loss" else accuracy
        better = value < self.best if self.on == "loss" else value > self.best
        if better:
            self.best, self.count = value, 0
        else:
            self.count += 1
        return self.patience is not None and self.count >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.count = state["best"], state["count"]


def parameter_groups(
    model: nn.Module, config: TrainConfig, new_layer: list[nn.Parameter] | None = None
) -> list[dict]:
    """Optimiser groups: L2 on every weight but the biases of conv and FC layers (MATLAB's
    BiasL2Factor 0), and `new_layer` parameters at new_layer_lr_factor x the rate."""
    new_ids = {id(p) for p in new_layer or []}
    biases = {
        id(m.bias)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None
    }
    if config.no_decay_1d:
        biases |= {id(p) for p in model.parameters() if p.ndim <= 1}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for param in model.parameters():
        if param.requires_grad:
            key = (id(param) in biases, id(param) in new_ids)
            groups.setdefault(key, []).append(param)
    return [
        {
            "params": params,
            "weight_decay": 0.0 if is_bias else config.weight_decay,
            "lr": config.learn_rate * (config.new_layer_lr_factor if is_new else 1.0),
        }
        for (is_bias, is_new), params in sorted(groups.items())
    ]


# fastai's Ranger: Lookahead's slow weights step every 6 steps, half-way to the fast ones.
LOOKAHEAD_K, LOOKAHEAD_ALPHA = 6, 0.5


def make_optimizer(groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum; Nesterov's for sgd_nesterov), Adam, AdamW, or "ranger" (fastai's:
    torch's RAdam with decoupled weight decay inside timm's Lookahead, whose param_groups
    and state_dict are the RAdam's, so the schedule and the checkpoint reach it)."""
    if config.optimizer == "ranger":
        from timm.optim import Lookahead

        radam = torch.optim.RAdam(
            groups,
            lr=config.learn_rate,
            betas=config.betas,
            eps=config.epsilon,
            decoupled_weight_decay=True,
        )
        return Lookahead(radam, alpha=LOOKAHEAD_ALPHA, k=LOOKAHEAD_K)
    if config.optimizer in ("sgdm", "sgd_nesterov"):
        nesterov = config.optimizer == "sgd_nesterov"
        return torch.optim.SGD(
            groups, lr=config.learn_rate, momentum=config.momentum, nesterov=nesterov
        )
    adam = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return adam(groups, lr=config.learn_rate, betas=config.betas, eps=config.epsilon)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule: "step" (the report's, stepped once per epoch), or,
    stepped once per batch, "cosine" (linear warmup for warmup_epochs, then cosine to 0),
    "flat_cos" (fastai's fit_flat_cos: after any warmup, flat at the peak until
    flat_fraction of all steps, then cosine to 0) or "onecycle" (torch's OneCycleLR: up
    for warmup_epochs, then down; SGD momentum or Adam's beta1 cycled the other way)."""
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, config.drop_period, config.drop_rate_factor
        )
    total = steps_per_epoch * config.max_epochs
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            [group["lr"] for group in optimizer.param_groups],
            total_steps=total,
            pct_start=max(warmup, 1) / total,
        )

    flat_end = warmup
    if config.schedule == "flat_cos":
        flat_end = min(max(warmup, round(config.flat_fraction * total)), total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if step < flat_end:
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - flat_end) / (total - flat_end)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_mixup(config: TrainConfig, num_classes: int):
    """timm's Mixup / CutMix on whole batches (soft targets with the label smoothing in
    them), or None when both are off."""
    if config.mixup_alpha <= 0 and config.cutmix_alpha <= 0:
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=config.mixup_alpha,
        cutmix_alpha=config.cutmix_alpha,
        label_smoothing=config.label_smoothing,
        num_classes=num_classes,
    )


def _train_mode(model: nn.Module) -> None:
    model.train()
    # Frozen layers keep their batch-norm statistics too.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and not any(
            p.requires_grad for p in module.parameters()
        ):
            module.eval()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    x: torch.Tensor,
    labels: torch.Tensor,
    runtime: Runtime,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on a batch already on the device; returns the (detached)
    loss and logits. `labels`: class indices, or class probabilities (mixup's). The same
    code runs in fit and in bench/benchmark.py."""
    with runtime.autocast(x.device):
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach(), logits.detach()


@dataclass
class FitState:
    """Where a training run is and what it has found: saved in every checkpoint (as a
    dict), so that a resumed run goes on exactly."""

    epoch: int = 0  # epochs finished
    stopping: dict = field(default_factory=dict)  # EarlyStopping.state_dict()
    best_loss: float = math.inf
    best_loss_epoch: int = 0
    best_accuracy: float = -1.0
    best_accuracy_epoch: int = 0
    kept_state: dict | None = None  # keep best_*: that epoch's weights (final: the model's)
    history: list[dict] = field(default_factory=list)  # one record per epoch
    finished: bool = False
    stopped_early: bool = False


@dataclass
class Training:
    """What one run steps: the model and `net` (what the step calls: DDP around the model
    when distributed), the optimiser, schedule, loss scaler and Mixup, and how it runs."""

    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    mixup: object | None
    config: TrainConfig
    device: torch.device
    runtime: Runtime
    world: World
    label: str
    steps_per_epoch: int  # full batches (the last partial one is dropped)

    @property
    def per_step(self) -> bool:
        return self.config.schedule != "step"  # the recipes' schedules step once per batch

    def learn_rate(self) -> float:
        """The base rate (the new layer's groups run at a multiple of it)."""
        return min(group["lr"] for group in self.optimizer.param_groups)


def set_up(
    model: nn.Module,
    train_size: int,
    config: TrainConfig,
    device: torch.device,
    runtime: Runtime,
    world: World,
    new_layer: list[nn.Parameter] | None,
    label: str,
) -> Training:
    """The model on the device with its optimiser, schedule, scaler and Mixup; the batch
    size checked against the data and the processes."""
    if config.batch_size % world.size:
        raise ParamsError(
            f"{label}: batch size {config.batch_size} does not split evenly over "
            f"{world.size} processes (runtime.processes)"
        )
    if config.keep not in ("final", "best_loss", "best_accuracy"):
        raise ValueError(f"keep is {config.keep!r}; allowed: final, best_loss, best_accuracy")
    if world.distributed and device.type == "cuda":  # global batch statistics, as 1 GPU
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device, memory_format=runtime.memory_format)
    optimizer = make_optimizer(parameter_groups(model, config, new_layer), config)
    steps_per_epoch = train_size // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"{label}: batch size {config.batch_size} is larger than the "
            f"{train_size} training images"
        )
    return Training(
        model=model,
        net=model,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, config, steps_per_epoch),
        scaler=runtime.grad_scaler(device),
        mixup=make_mixup(config, NUM_CLASSES),
        config=config,
        device=device,
        runtime=runtime,
        world=world,
        label=label,
        steps_per_epoch=steps_per_epoch,
    )


def previous_checkpoint(checkpoint: Path) -> Path:
    """Where the checkpoint of the epoch before the last is kept (see save_checkpoint)."""
    return checkpoint.with_name(checkpoint.name + ".prev")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _read_checkpoint(path: Path) -> tuple[dict | None, str]:
    """The saved dict, or None and why it cannot be used."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch reports a file cut short in several ways
        reason = (str(err).splitlines() or [type(err).__name__])[0].split(". ")[0][:100]
        return None, f"unreadable, cut short or corrupt ({reason})"
    if not isinstance(saved, dict) or not {"state", "model", "fingerprint"} <= saved.keys():
        return None, "not a training checkpoint of this project"
    return saved, ""


def resume(t: Training, checkpoint: Path | None, fingerprint: str) -> FitState:
    """The state of the checkpoint made with the same `fingerprint` (the model, optimiser,
    schedule, scaler and RNG loaded from it; a finished one is not trained again), else a
    fresh one.
    A checkpoint that cannot be read (a file cut short, a corrupt one) is named and left
    in place; the one of the epoch before (`previous_checkpoint`) is tried next."""
    if checkpoint is None:
        return FitState()
    for path in (checkpoint, previous_checkpoint(checkpoint)):
        if not path.exists():
            continue
        saved, why = _read_checkpoint(path)
        if saved is None:
            _say(f"{t.label}: {path} is {why}; not resumed from it")
            continue
        if saved["fingerprint"] != fingerprint:
            _say(
                f"{t.label}: starting afresh from epoch 1 ({path} was made with other "
                "parameters, data or code)"
            )
            return FitState()
        break
    else:
        if checkpoint.exists() or previous_checkpoint(checkpoint).exists():
            _say(f"{t.label}: no usable checkpoint; starting afresh from epoch 1")
        return FitState()
    t.model.load_state_dict(saved["model"])
    t.optimizer.load_state_dict(saved["optimizer"])
    t.scheduler.load_state_dict(saved["scheduler"])
    if saved.get("scaler"):
        t.scaler.load_state_dict(saved["scaler"])
    torch.set_rng_state(saved["torch_rng"])
    if saved.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    state = FitState(**saved["state"])
    if state.finished:  # e.g. the model's save failed after the last epoch: not trained again
        _say(
            f"{t.label}: {path} holds this run finished after epoch {state.epoch}; its "
            "weights are kept, not trained again (delete the file to train afresh)"
        )
    else:
        _say(f"{t.label}: resuming from {path} after epoch {state.epoch}")
    return state


def save_checkpoint(t: Training, checkpoint: Path, fingerprint: str, state: FitState) -> None:
    """Everything needed to go on after this epoch, written whole (temp file, rename); the
    one it replaces is kept as `previous_checkpoint`, so a kill at any moment leaves a
    readable checkpoint. A write fault (a full disk) leaves both as they were and says
    which epoch the same command will resume after."""
    cuda = torch.cuda.is_available()
    buffer = io.BytesIO()  # torch.save reports a full disk without its errno: write it here
    torch.save(
        {
            "fingerprint": fingerprint,
            "model": t.model.state_dict(),
            "optimizer": t.optimizer.state_dict(),
            "scheduler": t.scheduler.state_dict(),
            "scaler": t.scaler.state_dict() if t.scaler.is_enabled() else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if cuda else None,
            "state": asdict(state),
            "config": asdict(t.config),
        },
        buffer,
    )
    try:
        with replacing(checkpoint) as tmp:
            with open(tmp, "wb") as file:
                file.write(buffer.getbuffer())
                file.flush()
                os.fsync(file.fileno())
            if checkpoint.exists():
                os.replace(checkpoint, previous_checkpoint(checkpoint))
    except WriteError as err:
        kept = "nothing: the next run starts from epoch 1"
        for path in (checkpoint, previous_checkpoint(checkpoint)):
            saved, _ = _read_checkpoint(path) if path.exists() else (None, "")
            if saved is not None and saved["fingerprint"] == fingerprint:
                epoch = saved["state"]["epoch"]
                kept = f"{path} (after epoch {epoch}): the same command resumes from it"
                break
        raise WriteError(f"{err}; kept: {kept}") from err


def train_one_epoch(t: Training, train: ImageSet, epoch: int) -> dict:
    """One pass over the training set in the epoch's seeded order, augmented with the
    epoch's seeded draws; the epoch's loss, accuracy, learning rate and speed."""
    config, world = t.config, t.world
    seed = config.seed * 100_003 + epoch
    order = torch.Generator().manual_seed(seed)
    warp = torch.Generator().manual_seed(seed + 50_000)
    if t.mixup is not None:  # timm draws from numpy's global generator: seed it per epoch
        np.random.seed((seed + 70_000) % 2**32)
    _train_mode(t.model)
    steps_per_epoch = t.steps_per_epoch
    start, loss_sum, correct, seen = time.monotonic(), 0.0, 0, 0
    images_per_epoch = steps_per_epoch * config.batch_size
    label = f"{t.label} epoch {epoch}/{config.max_epochs}"
    progress = Progress(label, images_per_epoch, "img", every=10.0) if world.is_main else None
    for images, labels in batches(train, config.batch_size, order, drop_last=True, device=t.device):
        x = to_input(images, t.device, t.runtime.channels_last)
        labels = labels.to(t.device, non_blocking=True)
        # Under DDP a rank warps only its share of the batch, with the random draws of the
        # whole batch (as one process); mixup pairs images across the whole batch, so with
        # it every rank augments the whole batch, then takes its share.
        rows = slice(None) if t.mixup is not None else world.rows
        side = config.side
        if config.augmentation and config.crop_area_min is not None:
            x = random_resized_crop(x, warp, config.crop_area_min, config.reflection, rows, side)
        elif config.augmentation:
            x = augment(x, warp, config.scale, config.translation, config.reflection, rows, side)
        elif config.reflection:
            x = random_flip(centre_view(x, side), warp, rows)
        else:
            x = centre_view(x[rows], side)
        labels = labels[rows]
        targets, smoothing = labels, config.label_smoothing
        if t.mixup is not None:
            (x, targets), smoothing = t.mixup(x, labels), 0.0  # smoothing is in targets
            x, labels, targets = world.shard(x), world.shard(labels), world.shard(targets)
        loss, logits = train_step(t.net, t.optimizer, t.scaler, x, targets, t.runtime, smoothing)
        if t.per_step:
            learn_rate = t.learn_rate()
            t.scheduler.step()
        # Running sums stay on the device: no host sync in the step.
        loss_sum += loss * len(labels)
        correct += (logits.argmax(1) == labels).sum()
        seen += len(labels)
        # The running loss and accuracy are read (a host sync) only when a line is written.
        if progress:
            progress.update(
                config.batch_size,
                lambda s=loss_sum, c=correct, n=seen: (
                    f"loss {s.item() / n:.4f} acc {c.item() / n:.4f}"
                ),
            )
    seconds = time.monotonic() - start
    loss_total, correct, seen = world.totals(loss_sum, correct, seen)
    world.sync_buffers(t.model)
    if not t.per_step:
        learn_rate = t.learn_rate()
        t.scheduler.step()
    return {
        "train/loss": loss_total / seen,
        "train/accuracy": correct / seen,
        "learn_rate": learn_rate,
        "train/images_per_s": seen / seconds,
    }


def validate(t: Training, valid: ImageSet, labels: torch.Tensor) -> dict:
    """The validation set's loss and accuracy (counted on the host), on the validation
    image (the centre val_crop at the network's side)."""
    config = t.config
    logits, loss = predict(
        t.model, valid, t.device, runtime=t.runtime, side=config.side, crop=config.val_crop
    )
    return {
        "valid/loss": loss,
        "valid/accuracy": (logits.argmax(1) == labels).float().mean().item(),
    }


def record_epoch(state: FitState, record: dict, stopping: EarlyStopping, t: Training) -> None:
    """The epoch into the state: history, the best epochs (and their weights when `keep`
    wants them), early stopping, whether training is finished."""
    loss, accuracy = record["valid/loss"], record["valid/accuracy"]
    state.history.append(record)
    state.epoch = record["epoch"]
    improved = {
        "best_loss": loss < state.best_loss,
        "best_accuracy": accuracy > state.best_accuracy,
    }
    if improved["best_loss"]:
        state.best_loss, state.best_loss_epoch = loss, state.epoch
    if improved["best_accuracy"]:
        state.best_accuracy, state.best_accuracy_epoch = accuracy, state.epoch
    if improved.get(t.config.keep):
        state.kept_state = _cpu_state(t.model)
    stopped = stopping.update(loss, accuracy)
    state.stopping = stopping.state_dict()
    state.finished = stopped or state.epoch >= t.config.max_epochs
    state.stopped_early = stopped


def print_epoch(t: Training, state: FitState, stopping: EarlyStopping, seconds_left: float):
    if not t.world.is_main:
        return
    r, config = state.history[-1], t.config
    left = "" if state.finished else f" | at most {seconds_left:.0f} s left"
    print(
        f"{t.label} epoch {state.epoch}: train loss {r['train/loss']:.4f} acc "
        f"{r['train/accuracy']:.4f} | valid loss {r['valid/loss']:.4f} acc "
        f"{r['valid/accuracy']:.4f} | lr {r['learn_rate']:.3g} | "
        f"{r['train/images_per_s']:.1f} img/s | best loss epoch {state.best_loss_epoch}, best "
        f"acc {state.best_accuracy:.4f} (epoch {state.best_accuracy_epoch}) | patience "
        f"{stopping.count}/{config.patience} on {config.patience_on}{left}",
        file=sys.stderr,
        flush=True,
    )


def kept_result(state: FitState, t: Training) -> FitResult:
    """The weights `keep` names: the last epoch's, or those of the best epoch (the last
    epoch's when no epoch ever improved, e.g. NaN losses)."""
    if not state.history:
        raise ValueError(f"{t.label}: max_epochs must be at least 1")
    keep = t.config.keep
    if keep == "final":
        kept_state, kept_epoch = _cpu_state(t.model), state.epoch
    else:
        kept_state, kept_epoch = state.kept_state, getattr(state, f"{keep}_epoch")
    kept = keep
    if kept_state is None:
        kept_state, kept_epoch = _cpu_state(t.model), state.epoch
        kept = f"final (no {keep} epoch)"
    return FitResult(
        kept_state=kept_state,
        kept_epoch=kept_epoch,
        kept=kept,
        epochs_run=state.epoch,
        stopped_early=state.stopped_early,
        best_loss_epoch=state.best_loss_epoch,
        best_accuracy_epoch=state.best_accuracy_epoch,
        history=state.history,
    )


def _log_epoch(live, record: dict) -> None:
    if live is None:
        return
    for key, value in record.items():
        if key != "epoch":
            live.log_metric(key, value)
    live.next_step()


def fit(
    model: nn.Module,
    train: ImageSet,
    valid: ImageSet,
    config: TrainConfig,
    device: torch.device,
    live=None,
    checkpoint: Path | None = None,
    fingerprint: str = "",
    new_layer: list[nn.Parameter] | None = None,
    label: str = "train",
    runtime: Runtime | None = None,
    world: World | None = None,
) -> FitResult:
    """Train, validating after every epoch; stop after `patience` validations in a row
    without improvement (EarlyStopping); return the weights `config.keep` names: the last
    epoch's (R2018b's trainNetwork), or those of the lowest validation loss or the highest
    validation accuracy.

    With `checkpoint`, the whole state (model, optimiser, schedule, early-stopping state,
    RNG) is saved after each epoch, and a checkpoint with the same `fingerprint` (the
    parameters and data it was made with) is resumed; the data order and augmentation of
    epoch e come from generators seeded with (seed, e), so a resumed run repeats exactly
    (bit for bit on the CPU in fp32).

    `runtime` says how the step runs (memory layout, autocast, torch.compile, where the
    images are held); it changes speed, not what is computed (beyond rounding).

    Under torchrun (`world`, see distributed.py) each rank trains on its share of every
    global batch through DistributedDataParallel; only the main rank logs and saves.
    """
    runtime, world = runtime or Runtime(), world or World()
    t = set_up(model, len(train), config, device, runtime, world, new_layer, label)
    stopping = EarlyStopping(config.patience, config.patience_on)
    state = resume(t, checkpoint, fingerprint)
    if state.stopping:
        stopping.load_state_dict(state.stopping)
    for record in state.history:  # dvclive starts afresh: replay finished epochs
        _log_epoch(live, record)
    if runtime.compile:
        t.model.compile()  # in place: state_dict keys stay those of the plain model
    t.net = world.wrap(t.model, device)
    # Batches are gathered where `place` puts the images; accuracy is counted on the host.
    valid_labels = valid.labels
    train = place(train, device, runtime.data_on_device)
    valid = place(valid, device, runtime.data_on_device)
    start, first_epoch = time.monotonic(), state.epoch + 1
    while not state.finished and state.epoch < config.max_epochs:
        epoch = state.epoch + 1
        trained = train_one_epoch(t, train, epoch)
        if not math.isfinite(trained["train/loss"]):  # before the checkpoint is replaced
            kept = f"; the checkpoint after epoch {epoch - 1} is kept" if epoch > 1 else ""
            advice = f"lower {config.learn_rate_param} in params.yaml"
            if runtime.precision != "fp32":
                advice += f", or set runtime.precision: fp32 (this run: {runtime.precision})"
            raise TrainingDiverged(
                f"{t.label}: the training loss of epoch {epoch} is {trained['train/loss']}: the "
                f"run diverged at learning rate {trained['learn_rate']:g} ({advice}){kept}"
            )
        validated = validate(t, valid, valid_labels)
        record = {
            "epoch": epoch,
            "train/loss": trained["train/loss"],
            "train/accuracy": trained["train/accuracy"],
            **validated,
            "learn_rate": trained["learn_rate"],
            "train/images_per_s": trained["train/images_per_s"],
        }
        record_epoch(state, record, stopping, t)
        _log_epoch(live, record)
        seconds_per_epoch = (time.monotonic() - start) / (epoch - first_epoch + 1)
        print_epoch(t, state, stopping, seconds_per_epoch * (config.max_epochs - epoch))
        if checkpoint is not None and world.is_main:
            save_checkpoint(t, checkpoint, fingerprint, state)
    return kept_result(state, t)


def _cpu_state(model: nn.Module) -> dict:
    return copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})
