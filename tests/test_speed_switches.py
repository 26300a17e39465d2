"""The speed switches (runtime.* in params.yaml): checked like every other key, each one
trains on the CPU, and the benchmark's smoke run writes a well-formed metrics file."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from imagenette_repro.data.batches import ImageSet, batches, place, to_input
from imagenette_repro.inference.evaluation import predict
from imagenette_repro.params import ParamsError, validate
from imagenette_repro.runtime import Runtime, auto_precision, runtime_settings
from imagenette_repro.train.loop import TrainConfig, fit

from .conftest import ROOT


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("precision", "fp8", "'runtime.precision' is 'fp8'; allowed: auto, fp32, bf16, fp16"),
        ("precision", 16, "'runtime.precision' is 16; allowed: auto, fp32, bf16, fp16"),
        ("channels_last", "yes", "'runtime.channels_last' must be true/false, got 'yes'"),
        ("compile", 1, "'runtime.compile' must be true/false, got 1"),
        ("cudnn_benchmark", None, "'runtime.cudnn_benchmark' must be true/false, got None"),
        (
            "data_on_device",
            "gpu",
            "'runtime.data_on_device' must be true/false or 'auto', got 'gpu'",
        ),
        ("data_on_device", 0, "'runtime.data_on_device' must be true/false or 'auto', got 0"),
    ],
)
def test_bad_runtime_switches_are_named(params, key, value, message):
    params["runtime"][key] = value
    with pytest.raises(ParamsError) as err:
        validate(params)
    assert message in str(err.value)


def test_missing_runtime_switch_is_named(params):
    del params["runtime"]["precision"]
    with pytest.raises(ParamsError, match="missing key 'runtime.precision'"):
        validate(params)


def test_repository_defaults_choose_the_precision_and_do_not_compile(params):
    runtime = validate(params).runtime
    assert runtime.precision == "auto" and runtime.compile is False
    assert runtime.channels_last is True and runtime.data_on_device == "auto"


def cpu_with(monkeypatch, avx512_bf16: bool, amx: bool) -> None:
    """Answer torch's CPU feature queries as a CPU with (or without) native bf16 would."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [
        (False, False, "fp32"),  # AVX2-only (an EPYC Zen 2/3): emulated bf16, 10x slower
        (True, False, "bf16"),  # AVX-512 BF16 (a Zen 4)
        (False, True, "bf16"),  # AMX (a Sapphire Rapids Xeon)
    ],
)
def test_auto_precision_on_the_cpu_follows_native_bf16(
    params, monkeypatch, avx512_bf16, amx, expected
):
    cpu_with(monkeypatch, avx512_bf16, amx)
    cpu = torch.device("cpu")
    assert auto_precision(cpu) == expected
    assert runtime_settings(validate(params), cpu).precision == expected


def test_an_explicit_precision_is_kept_whatever_the_cpu(params, monkeypatch):
    cpu_with(monkeypatch, False, False)
    params["runtime"]["precision"] = "bf16"
    assert runtime_settings(validate(params), torch.device("cpu")).precision == "bf16"
    cpu_with(monkeypatch, True, True)
    params["runtime"]["precision"] = "fp32"
    assert runtime_settings(validate(params), torch.device("cpu")).precision == "fp32"


def test_auto_precision_on_cuda_asks_the_card(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert auto_precision(torch.device("cuda")) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert auto_precision(torch.device("cuda")) == "bf16"


def tiny_set(n: int, seed: int, size: int = 8) -> ImageSet:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=generator)
    return ImageSet(images, torch.arange(n) % 10)


def conv_model(dropout: float = 0.2) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )


CONFIG = dict(
    optimizer="sgdm",
    learn_rate=0.05,
    batch_size=10,
    max_epochs=2,
    patience=None,
    drop_period=2,
    drop_rate_factor=0.5,
    weight_decay=1e-4,
    augmentation=True,
    translation=1.0,
)


def train(runtime: Runtime, dropout: float = 0.2):
    config = TrainConfig(**CONFIG)
    model = conv_model(dropout)
    result = fit(
        model, tiny_set(30, 0), tiny_set(10, 1), config, torch.device("cpu"), runtime=runtime
    )
    return model, result


@pytest.mark.parametrize(
    "runtime",
    [
        Runtime(channels_last=False),
        Runtime(precision="bf16"),
        Runtime(precision="fp16"),  # with loss scaling
        Runtime(compile=True),
        Runtime(data_on_device=True),  # a no-op off CUDA
    ],
    ids=["contiguous", "bf16", "fp16", "compile", "data_on_device"],
)
def test_every_switch_trains_on_the_cpu(runtime):
    start = time.monotonic()
    model, result = train(runtime)
    assert result.epochs_run == 2
    for record in result.history:
        assert torch.isfinite(torch.tensor([record["train/loss"], record["valid/loss"]])).all()
    # The saved weights are the plain model's, whatever the switches.
    assert set(result.kept_state) == set(conv_model().state_dict())
    assert time.monotonic() - start < 120


def test_layout_switch_changes_speed_not_results():
    # fp32 on the CPU: channels_last or not, the same training up to rounding. (Not with
    # dropout: its masks are drawn in memory order, so the layout changes which units drop.)
    _, last = train(Runtime(channels_last=True), dropout=0.0)
    _, first = train(Runtime(channels_last=False), dropout=0.0)
    for key, value in last.kept_state.items():
        assert torch.allclose(value.float(), first.kept_state[key].float(), atol=1e-4), key


def test_fp32_runs_are_bit_identical():
    _, a = train(Runtime())
    _, b = train(Runtime())
    for key, value in a.kept_state.items():
        assert torch.equal(value, b.kept_state[key]), key


def test_cpu_batches_and_predict_keep_their_layout_and_order():
    data = tiny_set(25, 2)
    assert place(data, torch.device("cpu"), True) is data
    got = torch.cat([images for images, _ in batches(data, 10, None, False, torch.device("cpu"))])
    assert torch.equal(got, data.images)
    x = to_input(data.images[:4], torch.device("cpu"))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert to_input(data.images[:4], torch.device("cpu"), channels_last=False).is_contiguous()
    model = conv_model()
    logits, loss = predict(model, data, torch.device("cpu"), batch_size=10)
    plain = model(data.images.permute(0, 3, 1, 2).float() / 255)
    assert torch.allclose(logits, plain, atol=1e-5)
    assert loss == pytest.approx(nn.functional.cross_entropy(plain, data.labels).item(), rel=1e-5)


@pytest.mark.e2e
def test_benchmark_quick_mode_writes_its_metrics(tmp_path):
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "benchmark.py"), "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    seconds = time.monotonic() - start
    assert seconds < 180, f"--quick took {seconds:.0f} s"
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert report["network"] == "network_84_8153"
    assert report["machine"]["device"] == "cpu" and report["machine"]["torch"]
    assert report["peak"]["gflops"] > 0 and "GHz" in report["peak"]["how"]
    (size,) = report["sizes"]
    assert size["size"] == 32
    for part in ("epoch", "baseline", "step"):
        assert size[part]["images_per_s"] > 0, part
    assert size["epoch_over_baseline"] == pytest.approx(
        size["epoch"]["images_per_s"] / size["baseline"]["images_per_s"]
    )
    assert 0 < size["peak_fraction"] < 2 and size["gflop_per_image"] > 0.5
    dvc = report["dvc"]
    # split and prepare are independent: DVC runs them in either order.
    stages = dvc["repro_stages"]
    assert stages[0] == "download" and stages[-1] == "train_custom"
    assert sorted(stages[1:-1]) == ["prepare", "split"]
    assert dvc["exp_run_stages"] == ["train_custom"]  # the cache skips the data stages
    assert 0 < dvc["exp_run_adam_s"] and 0 < dvc["repro_s"]
    markdown = (tmp_path / "benchmark.md").read_text()
    assert "| 32 px |" in markdown and "Peak assumed" in markdown
