"""End to end: the real DVC pipeline in a temporary git repository holding this project,
fed the embedded sample of real Imagenette JPEGs over HTTP from 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
import yaml

from .conftest import run, use_tiny_settings
from .test_googlenet import make_weights_file

STAGES = (
    "download",
    "split",
    "prepare",
    "pretrained",
    "train_custom",
    "finetune_googlenet",
    "evaluate",
    "export@custom",
    "export@googlenet",
)


def stage_runs(output: str) -> dict[str, str]:
    """What DVC did with each stage: ran it, skipped it as unchanged, or restored its
    outputs from the run-cache."""
    runs = {}
    for stage in STAGES:
        found = [
            what
            for what, message in (
                ("ran", f"Running stage '{stage}'"),
                ("skipped", f"Stage '{stage}' didn't change, skipping"),
                ("restored", f"Stage '{stage}' is cached - skipping run"),
            )
            if message in output
        ]
        assert len(found) == 1, f"stage {stage}: {found}\n{output}"
        runs[stage] = found[0]
    return runs


def test_repro_then_adam_variant_reruns_only_training_and_evaluation(project, sample_url):
    repo, env = project
    made, _ = make_weights_file(repo.parent)
    weights = repo / "weights" / "googlenet-local.pth"
    shutil.copy(made, weights)  # replaced in place below
    use_tiny_settings(repo, sample_url, "weights/googlenet-local.pth")
    run(["git", "commit", "-qam", "tiny settings"], repo, env)

    output = run(["dvc", "repro"], repo, env)
    assert set(stage_runs(output).values()) == {"ran"}
    for name in ("custom", "googlenet"):
        exported = sorted(p.name for p in (repo / "data" / "exported" / name).iterdir())
        assert exported == [f"{name}.onnx", f"{name}.torchscript.pt", "manifest.json"]
    first = json.loads((repo / "metrics" / "evaluation.json").read_text())
    custom = first["custom"]
    assert custom["network"] == "network_84_8153"
    # The report's protocol: the sample's 200 train-folder images train, its 60 val-folder
    # images validate; no held-out part.
    assert first["data"]["protocol"] == "val_folder"
    assert first["data"]["images"] == {"train": 200, "valid": 60, "test": 0}
    assert custom["train"]["images"] == 200 and custom["val_folder"]["images"] == 60
    assert custom["val_folder_imagenet_val"]["images"] == 20
    assert "held_out" not in custom
    # R2018b's semantics: the last epoch's weights are kept.
    assert custom["kept_weights"] == "final" and custom["kept_epoch"] == custom["epochs_run"]
    # A 32-px run on 260 images is not the report's row: no report accuracy, no difference.
    assert not custom["is_report_row"]
    assert "report_accuracy" not in custom and "difference_from_report" not in custom
    assert custom["differs_in_settings"].startswith("32 px, 2 epochs max, batch 20, ")
    assert "200 train + 60 val images" in custom["differs_in_settings"]
    assert first["googlenet"]["pretrained"] and not first["googlenet"]["is_report_row"]
    assert "report_accuracy" not in first["googlenet"]
    assert first["googlenet"]["weights"] == f"file:{weights.name}"
    # Which weights made the result, and the ImageNet classifier's zero-shot accuracy.
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert first["googlenet"]["weights_sha256"] == digest
    zero_shot = first["googlenet"]["zero_shot"]
    assert {k: v["images"] for k, v in zero_shot.items()} == {
        "val_folder": 60,
        "val_folder_imagenet_val": 20,
        "val_folder_imagenet_train": 40,
    }
    confusion = json.loads((repo / "metrics" / "confusion" / "custom_val_folder.json").read_text())
    assert len(confusion) == 60 and set(confusion[0]) == {"actual", "predicted"}
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "results"], repo, env)

    output = run(["dvc", "exp", "run", "-S", "optimizer=adam"], repo, env)
    assert stage_runs(output) == {
        "download": "skipped",
        "split": "skipped",
        "prepare": "skipped",
        "pretrained": "skipped",
        "train_custom": "ran",
        "finetune_googlenet": "skipped",
        "evaluate": "ran",
        "export@custom": "ran",
        "export@googlenet": "skipped",
    }
    assert yaml.safe_load((repo / "params.yaml").read_text())["optimizer"] == "adam"
    second = json.loads((repo / "metrics" / "evaluation.json").read_text())
    assert second["googlenet"] == first["googlenet"]

    diff = json.loads(
        run(["dvc", "metrics", "diff", "--all", "--json"], repo, env, stdout_only=True)
    )
    accuracy = diff["metrics/evaluation.json"]["custom.val_folder.accuracy"]
    assert accuracy["old"] == pytest.approx(first["custom"]["val_folder"]["accuracy"])
    assert accuracy["new"] == pytest.approx(second["custom"]["val_folder"]["accuracy"])
    assert "googlenet.val_folder.accuracy" in diff["metrics/evaluation.json"]
    shown = run(["dvc", "metrics", "diff", "--all", "--md"], repo, env)
    assert "custom.val_folder.accuracy" in shown

    # Back to SGDM: DVC's run-cache restores the first training instead of repeating it.
    output = run(["dvc", "exp", "run", "-S", "optimizer=sgdm"], repo, env)
    assert stage_runs(output)["train_custom"] == "restored"
    assert stage_runs(output)["export@custom"] == "restored"
    third = json.loads((repo / "metrics" / "evaluation.json").read_text())
    assert third["custom"] == first["custom"]

    # The other protocol: a 70:30 split of the train folder validates; the val folder is
    # measured as before. Only the split and what follows it run again.
    output = run(["dvc", "exp", "run", "-S", "data.protocol=train_split"], repo, env)
    runs = stage_runs(output)
    assert (runs["split"], runs["prepare"], runs["train_custom"]) == ("ran", "skipped", "ran")
    held = json.loads((repo / "metrics" / "evaluation.json").read_text())
    assert held["data"]["images"] == {"train": 140, "valid": 60, "test": 60}
    assert held["custom"]["held_out"]["images"] == 60
    assert held["custom"]["val_folder"]["images"] == 60
    assert "protocol train_split" in held["custom"]["differs_in_settings"]

    # The weights file replaced in place, under the same path: fine-tuning runs again, and
    # the metrics name the new file's sha256.
    torch.manual_seed(1)
    state = torch.load(weights, weights_only=True)
    torch.save({k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}, weights)
    output = run(["dvc", "exp", "run", "-S", "data.protocol=val_folder"], repo, env)
    runs = stage_runs(output)
    assert (runs["pretrained"], runs["finetune_googlenet"]) == ("ran", "ran")
    assert runs["train_custom"] == "restored"
    replaced = json.loads((repo / "metrics" / "evaluation.json").read_text())
    new_digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert new_digest != digest and replaced["googlenet"]["weights_sha256"] == new_digest

    # The augmentation's code edited (batches.py, not data.py): the data stages stay
    # cached; the stages that run it (and evaluate, which loads batches) re-run.
    assert json.loads(run(["dvc", "status", "--json"], repo, env, stdout_only=True)) == {}
    code = repo / "src" / "imagenette_repro" / "data" / "batches.py"
    edited = code.read_text().replace("outside pixels are 0", "outside pixels are zero")
    assert edited != code.read_text()
    code.write_text(edited)
    changed = json.loads(run(["dvc", "status", "--json"], repo, env, stdout_only=True))
    assert set(changed) == {"train_custom", "finetune_googlenet", "evaluate"}, changed
