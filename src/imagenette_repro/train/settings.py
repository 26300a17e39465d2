"""params.yaml -> the training settings (TrainConfig) of each training: a report row's
custom network, a modern recipe, the pretrained network's fine-tuning. The one place
where params become training settings; the stages, the benchmark and the tests use it."""

from __future__ import annotations

from ..params import GoogLeNetParams, Params, TrainParams
from .loop import TrainConfig

PRETRAINED_INPUT_SIZE = 224  # GoogLeNet's and the stand-in's own input size
# A recipe's train.translation_px is in pixels at this side (the ImageInput of the report's
# best rows): a constant, so that train_custom reads no other row's params.
RECIPE_REFERENCE_SIZE = 224


def _shared(
    section: TrainParams | GoogLeNetParams, seed: int, input_size: int, network_size: int
) -> dict:
    """What every training takes from its section (train.* or googlenet.*). The shift of
    the augmentation is in pixels at the network's own input size: scaled to ours."""
    return dict(
        max_epochs=section.max_epochs,
        patience_on=section.patience_on,
        keep=section.keep,
        momentum=section.momentum,
        scale=(section.scale_min, section.scale_max),
        translation=section.translation_px * input_size / network_size,
        reflection=section.reflection,
        seed=seed,
    )


def report_row_training(params: Params, input_size: int) -> TrainConfig:
    """train_custom for the report's row `network`: its columns and train.*."""
    train = params.train
    return TrainConfig(
        **{
            **_shared(train, params.seed, input_size, params.network_input_size()),
            # MATLAB's reflection is an option of its augmenter: none without it (in the
            # loop, reflection alone means flips alone).
            "reflection": train.reflection and params.image_augmentation,
        },
        optimizer=params.optimizer,
        learn_rate=params.learn_rate,
        batch_size=train.batch_size,
        patience=params.patience,
        drop_period=params.drop_period,
        drop_rate_factor=params.drop_rate_factor,
        weight_decay=train.l2_regularization,
        betas=(train.adam_beta1, train.adam_beta2),
        epsilon=train.adam_epsilon,
        augmentation=params.image_augmentation,
    )


def recipe_training(params: Params, input_size: int) -> TrainConfig:
    """train_custom for the modern recipe `network` (params.yaml `recipes`): its own
    optimiser, schedule and regularisation; epochs, seed, stopping and the augmentation's
    ranges from train.* (the shift in pixels at RECIPE_REFERENCE_SIZE), Adam's betas and
    epsilon too unless the recipe sets its own. No early stopping: the schedule runs to its
    end, and train.keep picks the weights. augmentation false with reflection true: flips
    alone."""
    train, recipe = params.train, params.recipe
    return TrainConfig(
        **{
            **_shared(train, params.seed, input_size, RECIPE_REFERENCE_SIZE),
            "reflection": recipe.reflection,
        },
        optimizer=recipe.optimizer,
        learn_rate=recipe.learn_rate,
        learn_rate_param=f"recipes.{params.network}.learn_rate",
        batch_size=recipe.batch_size,
        patience=None,
        weight_decay=recipe.weight_decay,
        betas=tuple(recipe.betas) if recipe.betas else (train.adam_beta1, train.adam_beta2),
        epsilon=train.adam_epsilon if recipe.eps is None else recipe.eps,
        augmentation=recipe.augmentation,
        crop_area_min=recipe.crop_area_min,
        schedule=recipe.schedule,
        warmup_epochs=recipe.warmup_epochs,
        flat_fraction=recipe.flat_fraction,
        label_smoothing=recipe.label_smoothing,
        mixup_alpha=recipe.mixup_alpha,
        cutmix_alpha=recipe.cutmix_alpha,
        no_decay_1d=True,
        side=recipe.train_size,
        val_crop=recipe.val_crop,
    )


def custom_training(params: Params, input_size: int) -> TrainConfig:
    """train_custom's settings: a recipe's when `network` names one, else the report row's."""
    if params.is_recipe:
        return recipe_training(params, input_size)
    return report_row_training(params, input_size)


def finetune_training(params: Params, input_size: int) -> TrainConfig:
    """finetune_googlenet: googlenet.*, the augmentation always on (the report's)."""
    section = params.googlenet
    return TrainConfig(
        **_shared(section, params.seed, input_size, PRETRAINED_INPUT_SIZE),
        optimizer=section.optimizer,
        learn_rate=section.learn_rate,
        learn_rate_param="googlenet.learn_rate",
        batch_size=section.batch_size,
        patience=section.patience,
        drop_period=section.drop_period,
        drop_rate_factor=section.drop_rate_factor,
        weight_decay=section.l2_regularization,
        augmentation=True,
        new_layer_lr_factor=section.new_layer_lr_factor,
    )
