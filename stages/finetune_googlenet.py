"""finetune_googlenet: torchvision's GoogLeNet, its 1000-class classifier replaced by a
10-class one, fine-tuned as in report.md (params: googlenet.*)."""

from pathlib import Path

from imagenette_repro.classes import WNIDS
from imagenette_repro.models import (
    build_googlenet,
    freeze_googlenet,
    new_layer_parameters,
)
from imagenette_repro.network_stage import (
    load_training_data,
    runtime_settings,
    setup_torch,
    train_and_save,
)
from imagenette_repro.params import load_params
from imagenette_repro.stage import run
from imagenette_repro.training import TrainConfig


def main() -> None:
    params = load_params()
    settings = params["googlenet"]
    device = setup_torch(params, training=True)
    model, weights_info = build_googlenet(settings["weights"], len(WNIDS))
    frozen = freeze_googlenet(model, settings["freeze_through"])
    train, valid, data_hash = load_training_data("googlenet.batch_size", settings["batch_size"])
    input_size = train.images.shape[1]
    config = TrainConfig(
        optimizer=settings["optimizer"],
        learn_rate=settings["learn_rate"],
        batch_size=settings["batch_size"],
        max_epochs=settings["max_epochs"],
        patience=settings["patience"],
        patience_on=settings["patience_on"],
        keep=settings["keep"],
        drop_period=settings["drop_period"],
        drop_rate_factor=settings["drop_rate_factor"],
        weight_decay=settings["l2_regularization"],
        momentum=settings["momentum"],
        augmentation=True,
        scale=(settings["scale_min"], settings["scale_max"]),
        translation=settings["translation_px"] * input_size / 224,  # GoogLeNet's own size
        reflection=settings["reflection"],
        seed=params["seed"],
        new_layer_lr_factor=settings["new_layer_lr_factor"],
    )
    train_and_save(
        model,
        train,
        valid,
        config,
        device,
        runtime=runtime_settings(params, device),
        label="googlenet",
        live_dir="metrics/finetune_googlenet",
        checkpoint=Path("data/checkpoints/finetune_googlenet.pt"),
        model_path=Path("data/models/googlenet.pt"),
        fingerprint_parts=(weights_info, frozen, data_hash),
        new_layer=new_layer_parameters(model),
        meta={
            "kind": "googlenet",
            "network": "googlenet",
            "transform_input": model[1].transform_input,
            "normalization": "ImageNet mean/std, inside the model",
            **weights_info,
            "frozen_layers": frozen,
        },
    )


if __name__ == "__main__":
    run(main)
