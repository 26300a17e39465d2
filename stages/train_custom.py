"""train_custom: train the report's custom CNN (params: network, optimizer, learn_rate,
patience, drop_period, drop_rate_factor, image_augmentation, train.*)."""

from pathlib import Path

from dvclive import Live

from imagenette_repro.architecture import parse_layer
from imagenette_repro.classes import ENGLISH, WNIDS
from imagenette_repro.data import mean_image
from imagenette_repro.models import build_custom_network, save_model
from imagenette_repro.params import architecture_name, layer_list, load_params
from imagenette_repro.stage import (
    code_fingerprint,
    fingerprint,
    load_training_data,
    run,
    setup_torch,
)
from imagenette_repro.training import TrainConfig, fit

MODEL = Path("data/models/custom.pt")
CHECKPOINT = Path("data/checkpoints/train_custom.pt")
LIVE_DIR = "metrics/train_custom"


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
    device = setup_torch(params)
    _, _, train, valid, data_hash = load_training_data(
        "train.batch_size", params["train"]["batch_size"]
    )
    input_size = train.images.shape[1]
    layers = layer_list(params)
    model = build_custom_network(
        layers, input_size, len(WNIDS), params["train"]["init"], params["network"]
    )
    model[0].mean.copy_(mean_image(train.images))  # MATLAB's "zerocenter"
    config = train_config(params, input_size, parse_layer(layers[0]).size)
    CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    with Live(LIVE_DIR, dvcyaml=False, save_dvc_exp=False) as live:
        live.log_params(
            {"network": params["network"], "input_size": input_size, "device": str(device)}
        )
        result = fit(
            model,
            train,
            valid,
            config,
            device,
            live,
            CHECKPOINT,
            fingerprint(config, layers, params["train"]["init"], data_hash, code_fingerprint()),
            label=params["network"],
        )
        live.log_metric("best/valid_accuracy", result.best_accuracy, plot=False)
        live.log_metric("best/epoch", result.best_epoch, plot=False)
        live.log_metric("epochs_run", result.epochs_run, plot=False)
    model.load_state_dict(result.best_state)
    MODEL.parent.mkdir(parents=True, exist_ok=True)
    save_model(
        MODEL,
        model,
        {
            "kind": "custom",
            "network": params["network"],
            "architecture": architecture_name(params),
            "layers": layers,
            "input_size": input_size,
            "classes": WNIDS,
            "class_names": ENGLISH,
            "normalization": "zerocenter: the training images' mean image, inside the model",
            "input": "float RGB images in [0, 1], shape (N, 3, S, S)",
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "row_params": {
                key: params[key]
                for key in (
                    "optimizer",
                    "learn_rate",
                    "patience",
                    "drop_period",
                    "drop_rate_factor",
                    "image_augmentation",
                )
            },
            "train_config": vars(config),
        },
    )


if __name__ == "__main__":
    run(main)
