"""pretrained: the ImageNet weights finetune_googlenet starts from (params: googlenet.model,
googlenet.weights), copied into data/pretrained/ with their sha256 and source, after
checking that they load into the network.

Always run (dvc.yaml: always_changed): a weights file replaced in place under the same
path is noticed, since its copy's hash changes; the same contents leave finetune_googlenet
cached."""

import shutil
from pathlib import Path

from imagenette_repro.files import replacing
from imagenette_repro.params import load_params
from imagenette_repro.pretrained import (
    WeightsError,
    check_hash_in_name,
    imagenet_network,
    read_state,
    weights_source,
)
from imagenette_repro.stage import file_sha256, run, write_json

TARGET = Path("data/pretrained")


def main() -> None:
    params = load_params()
    model, weights = params["googlenet"]["model"], params["googlenet"]["weights"]
    path, source = weights_source(model, weights)
    TARGET.mkdir(parents=True, exist_ok=True)
    copy = TARGET / "weights.pth"
    info = {"model": model, "weights": weights, "source": source, "pretrained": path is not None}
    if path is None:
        copy.unlink(missing_ok=True)
    else:
        digest = file_sha256(path)
        check_hash_in_name(path, digest)
        state = read_state(path)  # its errors name the file already
        try:
            imagenet_network(model, state)
        except WeightsError as err:  # say which file does not fit
            raise WeightsError(f"{path}: {err}") from None
        with replacing(copy) as tmp:
            shutil.copyfile(path, tmp)
        info.update(sha256=digest, bytes=path.stat().st_size)
    write_json(TARGET / "source.json", info)
    print(f"{TARGET}: {model} weights {source}" + (f" (sha256 {info['sha256']})" if path else ""))


if __name__ == "__main__":
    run(main)
