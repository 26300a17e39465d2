"""finetune_googlenet: torchvision's GoogLeNet, its 1000-class classifier replaced by a
10-class one, fine-tuned as in report.md (params: googlenet.*)."""

from pathlib import Path

from dvclive import Live

from imagenette_repro.classes import ENGLISH, WNIDS
from imagenette_repro.models import (
    build_googlenet,
    freeze_googlenet,
    new_layer_parameters,
    save_model,
)
from imagenette_repro.params import load_params
from imagenette_repro.stage import (
    code_fingerprint,
    fingerprint,
    load_training_data,
    run,
    setup_torch,
)
from imagenette_repro.training import TrainConfig, fit

MODEL = Path("data/models/googlenet.pt")
CHECKPOINT = Path("data/checkpoints/finetune_googlenet.pt")
LIVE_DIR = "metrics/finetune_googlenet"


def main() -> None:
    params = load_params()
    settings = params["googlenet"]
    device = setup_torch(params)
    model, weights_info = build_googlenet(settings["weights"], len(WNIDS))
    frozen = freeze_googlenet(model, settings["freeze_through"])
    _, _, train, valid, data_hash = load_training_data(
        "googlenet.batch_size", settings["batch_size"]
    )
    input_size = train.images.shape[1]
    config = TrainConfig(
        optimizer=settings["optimizer"],
        learn_rate=settings["learn_rate"],
        batch_size=settings["batch_size"],
        max_epochs=settings["max_epochs"],
        patience=settings["patience"],
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
    CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    with Live(LIVE_DIR, dvcyaml=False, save_dvc_exp=False) as live:
        live.log_params(
            {
                "weights": weights_info["weights"],
                "input_size": input_size,
                "frozen": ",".join(frozen),
                "device": str(device),
            }
        )
        result = fit(
            model,
            train,
            valid,
            config,
            device,
            live,
            CHECKPOINT,
            fingerprint(config, weights_info, frozen, data_hash, code_fingerprint()),
            new_layer=new_layer_parameters(model),
            label="googlenet",
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
            "kind": "googlenet",
            "network": "googlenet",
            "transform_input": model[1].transform_input,
            "input_size": input_size,
            "classes": WNIDS,
            "class_names": ENGLISH,
            "normalization": "ImageNet mean/std, inside the model",
            "input": "float RGB images in [0, 1], shape (N, 3, S, S)",
            **weights_info,
            "frozen_layers": frozen,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "train_config": vars(config),
        },
    )


if __name__ == "__main__":
    run(main)
