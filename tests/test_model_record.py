"""The record a saved model carries: written and read back whole, a foreign file refused."""

import pytest
import torch

from imagenette_repro.models.record import ModelRecord, read_saved, save_model

from .conftest import model_record


def test_the_record_and_weights_come_back_as_saved(tmp_path):
    model = torch.nn.Linear(3, 10)
    record = model_record(kind="timm", network="r", input_size=64, timm_model="resnet10t")
    save_model(tmp_path / "m.pt", model, record)
    state, loaded = read_saved(tmp_path / "m.pt")
    assert loaded == record and isinstance(loaded, ModelRecord)
    assert torch.equal(state["weight"], model.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # the temporary name is gone


def test_an_older_pretrained_record_names_googlenet():
    values = {**vars(model_record(kind="googlenet", network="googlenet", input_size=32))}
    del values["model"]
    assert ModelRecord.from_dict(values).model == "googlenet"


@pytest.mark.parametrize(
    ("saved", "message"),
    [
        ({"weights": 1}, "expected a mapping with 'meta' and 'state_dict'"),
        ({"meta": {"kind": "custom"}, "state_dict": {}}, "its record is incomplete"),
        ({"meta": {"kind": "custom", "colour": 1}, "state_dict": {}}, "unknown fields: colour"),
    ],
)
def test_a_file_the_pipeline_did_not_save_is_refused(tmp_path, saved, message):
    torch.save(saved, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=message):
        read_saved(tmp_path / "other.pt")
