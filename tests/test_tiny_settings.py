"""The tests' tiny settings do not depend on whether `make sample` left its experiment in
the working tree, so the README's commands pass in either order."""

import yaml

from imagenette_repro.experiments.catalogue import apply_overrides

from . import scratch
from .conftest import ROOT


def test_tiny_settings_are_the_same_after_make_sample(tmp_path):
    overrides = scratch.sample_overrides()
    assert len(overrides) >= 10 and "train.init=glorot" in overrides
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    pristine, sampled = tmp_path / "pristine", tmp_path / "sampled"
    for folder, values in ((pristine, params), (sampled, apply_overrides(params, overrides))):
        folder.mkdir()
        (folder / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    assert scratch.use_tiny_settings(pristine) == scratch.use_tiny_settings(sampled)
