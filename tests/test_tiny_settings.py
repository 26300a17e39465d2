"""The tests' tiny settings do not depend on whether `make sample` left its experiment in
the working tree, so the README's commands pass in either order."""

import re

import yaml

from imagenette_repro.queue_rows import apply_overrides

from . import scratch
from .conftest import ROOT


def sample_overrides() -> list[str]:
    """The `-S key=value` settings of scripts/run_sample.sh (the md5 given a value)."""
    text = (ROOT / "scripts" / "run_sample.sh").read_text()
    return [o.replace("$md5", "0" * 32) for o in re.findall(r'-S "?([\w.]+=[^"\s]+)"?', text)]


def test_tiny_settings_are_the_same_after_make_sample(tmp_path):
    overrides = sample_overrides()
    assert len(overrides) >= 10 and "train.init=glorot" in overrides
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    pristine, sampled = tmp_path / "pristine", tmp_path / "sampled"
    for folder, values in ((pristine, params), (sampled, apply_overrides(params, overrides))):
        folder.mkdir()
        (folder / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    assert scratch.use_tiny_settings(pristine) == scratch.use_tiny_settings(sampled)
