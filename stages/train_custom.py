"""train_custom: train the report's custom CNN (params: network, optimizer, learn_rate,
patience, drop_period, drop_rate_factor, image_augmentation, train.*)."""

from pathlib import Path

from imagenette_repro.architecture import parse_layer
from imagenette_repro.classes import WNIDS
from imagenette_repro.data import mean_image
from imagenette_repro.models import build_custom_network
from imagenette_repro.params import ROW_COLUMNS, architecture_name, layer_list, load_params
from imagenette_repro.stage import (
    load_training_data,
    run,
    runtime_settings,
    setup_torch,
    train_and_save,
)
from imagenette_repro.training import TrainConfig


def train_config(params: dict, input_size: int, report_input_size: int) -> TrainConfig:
    train = params["train"]
    return TrainConfig(
        optimizer=params["optimizer"],
        learn_rate=params["learn_rate"],
        batch_size=train["batch_size"],
        max_epochs=train["max_epochs"],
        patience=params["patience"],
        drop_period=params["drop_period"],
        drop_rate_factor=params["drop_rate_factor"],
        weight_decay=train["l2_regularization"],
        momentum=train["momentum"],
        betas=(train["adam_beta1"], train["adam_beta2"]),
        epsilon=train["adam_epsilon"],
        augmentation=params["image_augmentation"],
        scale=(train["scale_min"], train["scale_max"]),
        # The shift is in pixels at the network's own input size; scale it with ours.
        translation=train["translation_px"] * input_size / report_input_size,
        reflection=train["reflection"],
        seed=params["seed"],
    )


def main() -> None:
    params = load_params()
    device = setup_torch(params, training=True)
    train, valid, data_hash = load_training_data("train.batch_size", params["train"]["batch_size"])
    input_size = train.images.shape[1]
    layers = layer_list(params)
    model = build_custom_network(
        layers, input_size, len(WNIDS), params["train"]["init"], params["network"]
    )
    model[0].mean.copy_(mean_image(train.images))  # MATLAB's "zerocenter"
    config = train_config(params, input_size, parse_layer(layers[0]).size)
    train_and_save(
        model,
        train,
        valid,
        config,
        device,
        runtime=runtime_settings(params, device),
        label=params["network"],
        live_dir="metrics/train_custom",
        checkpoint=Path("data/checkpoints/train_custom.pt"),
        model_path=Path("data/models/custom.pt"),
        fingerprint_parts=(layers, params["train"]["init"], data_hash),
        meta={
            "kind": "custom",
            "network": params["network"],
            "architecture": architecture_name(params),
            "layers": layers,
            "normalization": "zerocenter: the training images' mean image, inside the model",
            "row_params": {key: params[key] for key in ROW_COLUMNS},
        },
    )


if __name__ == "__main__":
    run(main)
