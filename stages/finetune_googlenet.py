"""finetune_googlenet: an ImageNet-pretrained network (googlenet.model: the report's
GoogLeNet, or the EfficientNet-Lite0 stand-in) from --pretrained, its zero-shot
accuracy on the val folder measured first, then its 1000-class classifier replaced by a
10-class one and fine-tuned as in report.md (params: googlenet.*)."""

import json

import pandas as pd
import torch

from imagenette_repro.data.batches import ImageSet, load_store
from imagenette_repro.inference.evaluation import VAL_FOLDER_SETS, evaluate_model
from imagenette_repro.models.pretrained import (
    ImagenetteLogits,
    classifier,
    freeze_through,
    imagenet_network,
    read_state,
    replace_classifier,
)
from imagenette_repro.params import load_params
from imagenette_repro.runtime import Runtime, runtime_settings, setup_torch
from imagenette_repro.stage_io import run, stage_paths
from imagenette_repro.train.settings import finetune_training
from imagenette_repro.train.stage import load_training_data, train_and_save


def zero_shot(
    model: torch.nn.Module, store: ImageSet, index: pd.DataFrame, device, runtime: Runtime
) -> dict:
    """The ImageNet classifier's accuracy on the val folder (its 10 classes' logits), on
    the ImageNet-validation images and on the ImageNet-training images apart."""
    with torch.no_grad():
        summary, _, _ = evaluate_model(
            ImagenetteLogits(model).eval(),
            store,
            index,
            device,
            runtime,
            VAL_FOLDER_SETS,
            label="zero-shot (ImageNet classifier)",
        )
    model.cpu()
    return summary


def main() -> None:
    paths = stage_paths(
        __doc__, "pretrained", "store", "split_index", "model", "metrics", "checkpoint"
    )
    params = load_params()
    settings = params.googlenet
    device = setup_torch(params, training=True)
    runtime = runtime_settings(params, device)
    source = json.loads((paths.pretrained / "source.json").read_text())
    name = source["model"]
    state = read_state(paths.pretrained / "weights.pth") if source["pretrained"] else None
    model = imagenet_network(name, state)
    store, index = load_store(paths.store, paths.split_index)  # once: zero-shot, training
    measured = zero_shot(model, store, index, device, runtime) if state is not None else None
    if measured:
        print(
            "zero-shot (ImageNet classifier, before fine-tuning): "
            + ", ".join(f"{s} {m['accuracy']:.4f} ({m['images']})" for s, m in measured.items())
        )
    replace_classifier(model, name)
    frozen = freeze_through(model, settings.freeze_through)
    batch = ("googlenet.batch_size", settings.batch_size)
    train, valid, data_hash = load_training_data(
        paths.store, paths.split_index, *batch, (store, index)
    )
    del store, index  # the subsets are copies
    weights = {
        "model": name,
        "weights": source["source"],  # file:<name>, a URL, pip:<wheel>, or none
        "weights_sha256": source.get("sha256"),
        "pretrained": source["pretrained"],
    }
    train_and_save(
        model,
        train,
        valid,
        finetune_training(params, train.images.shape[1]),
        device,
        runtime=runtime,
        label=name,
        live_dir=paths.metrics,
        checkpoint=paths.checkpoint,
        model_path=paths.model,
        fingerprint_parts=(weights, frozen, data_hash),
        new_layer=list(classifier(model, name).parameters()),
        meta={
            "kind": "googlenet",
            "network": name,
            "transform_input": getattr(model[1], "transform_input", False),
            "normalization": "the network's own mean/std, inside the model",
            **weights,
            "zero_shot": measured,
            "frozen_layers": frozen,
        },
    )


if __name__ == "__main__":
    run(main)
