"""train_custom: train the report's custom CNN (params: network, optimizer, learn_rate,
patience, drop_period, drop_rate_factor, image_augmentation, train.*), or, when `network`
names one of `recipes`, that modern recipe's timm model (same loop, same outputs)."""

from imagenette_repro.data.batches import ImageSet, mean_image
from imagenette_repro.data.classes import WNIDS
from imagenette_repro.models.architecture import without_dropout
from imagenette_repro.models.networks import build_custom_network, build_timm_network
from imagenette_repro.params import Params, ParamsError, load_params
from imagenette_repro.runtime import runtime_settings, setup_torch
from imagenette_repro.stage_io import run, stage_paths
from imagenette_repro.train.settings import custom_training
from imagenette_repro.train.stage import load_training_data, train_and_save

# What a recipe's model does to its input itself (its record's `normalization`).
NORMALIZATIONS = {
    "imagenet": "ImageNet mean and std, inside the model",
    "none": "none: the images in [0, 1] as they are",
}


def recipe_network(params: Params, train: ImageSet, data_hash: str):
    """A modern recipe's timm model, fingerprint parts and model meta."""
    name, recipe = params.network, params.recipe
    try:
        model = build_timm_network(
            recipe.model, recipe.stem_stride, len(WNIDS), recipe.model_args, recipe.input_scaling
        )
    except ValueError as err:
        raise ParamsError(f"params.yaml: 'recipes.{name}': {err}") from None
    settings = recipe.model_dump()
    meta = {
        "kind": "timm",
        "network": name,
        "architecture": f"timm:{recipe.model}",
        "timm_model": recipe.model,
        "stem_stride": recipe.stem_stride,
        "model_args": recipe.model_args,
        "normalization": NORMALIZATIONS[recipe.input_scaling],
        "recipe": settings,
    }
    return model, (settings, data_hash), meta


def report_network(params: Params, train: ImageSet, data_hash: str):
    """The report's network `network` (its layer list), fingerprint parts and model
    meta."""
    input_size = train.images.shape[1]
    layers = params.layer_list()
    if not params.train.dropout:
        layers = without_dropout(layers)
    model = build_custom_network(layers, input_size, len(WNIDS), params.train.init, params.network)
    model[0].mean.copy_(mean_image(train.images))  # MATLAB's "zerocenter"
    meta = {
        "kind": "custom",
        "network": params.network,
        "architecture": params.architecture_name(),
        "layers": layers,
        "normalization": "zerocenter: the training images' mean image, inside the model",
        "row_params": params.row_columns,
        "init": params.train.init,
        "dropout": params.train.dropout,
    }
    return model, (layers, params.train.init, data_hash), meta


def main() -> None:
    paths = stage_paths(__doc__, "store", "split_index", "model", "metrics", "checkpoint")
    params = load_params()
    device = setup_torch(params, training=True)
    name = params.network
    if params.is_recipe:
        build, batch_key = recipe_network, f"recipes.{name}.batch_size"
        batch_size = params.recipe.batch_size
    else:
        build, batch_key = report_network, "train.batch_size"
        batch_size = params.train.batch_size
    train, valid, data_hash = load_training_data(
        paths.store, paths.split_index, batch_key, batch_size
    )
    model, fingerprint_parts, meta = build(params, train, data_hash)
    train_and_save(
        model,
        train,
        valid,
        custom_training(params, train.images.shape[1]),
        device,
        runtime=runtime_settings(params, device),
        label=name,
        live_dir=paths.metrics,
        checkpoint=paths.checkpoint,
        model_path=paths.model,
        fingerprint_parts=fingerprint_parts,
        meta=meta,
    )


if __name__ == "__main__":
    run(main)
