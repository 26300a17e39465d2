"""evaluate's sets come from one prediction pass, with the numbers a pass per set gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from imagenette_repro.data.batches import ImageSet
from imagenette_repro.inference import evaluation


def store_and_index(n: int = 60) -> tuple[ImageSet, pd.DataFrame]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 8, 8, 3), dtype=torch.uint8, generator=generator)
    index = pd.DataFrame(
        {
            "subset": ["train"] * 30 + ["valid"] * 30,
            "folder": ["train"] * 40 + ["val"] * 20,
            "imagenet_val": [i % 3 == 0 for i in range(n)],
        }
    )
    return ImageSet(images, torch.arange(n) % 10), index


def test_each_image_is_predicted_once_with_the_same_numbers_as_a_pass_per_set(monkeypatch):
    store, index = store_and_index()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    cpu = torch.device("cpu")
    calls = []
    real_predict = evaluation.predict

    def counting_predict(model, data, *args, **kwargs):
        calls.append(len(data))
        return real_predict(model, data, *args, **kwargs)

    monkeypatch.setattr(evaluation, "predict", counting_predict)
    summary, per_class, pairs = evaluation.evaluate_model(model, store, index, cpu)
    assert calls == [len(index)]  # one pass over every image the sets cover
    assert set(summary) == set(evaluation.EVALUATION_SETS)
    for name, rule in evaluation.EVALUATION_SETS.items():
        subset = store.subset(rule(index).to_numpy())
        logits, loss = real_predict(model, subset, cpu)
        actual = subset.labels.numpy()
        accuracy = float((logits.argmax(1).numpy() == actual).mean())
        assert summary[name]["images"] == len(actual)
        assert summary[name]["accuracy"] == accuracy
        assert summary[name]["loss"] == pytest.approx(loss, rel=1e-6)
        assert len(pairs[name]) == len(actual)
        predicted = logits.argmax(1).numpy()
        assert list(per_class[name].values()) == [
            float((predicted[actual == c] == c).mean()) for c in np.unique(actual)
        ]
