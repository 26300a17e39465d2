"""prepare: decode every image once (RGB, squashed to data.input_size) into an array store,
so that no training epoch decodes a JPEG again. Independent of the split, so a new seed
does not decode again."""

from imagenette_repro.data.dataset import list_images, write_array_store
from imagenette_repro.files import replacing
from imagenette_repro.params import load_params
from imagenette_repro.stage_io import run, stage_paths, write_json


def main() -> None:
    paths = stage_paths(__doc__, "raw", "out")
    params = load_params()
    size = params.data.input_size
    raw, out = paths.raw, paths.out
    out.mkdir(parents=True, exist_ok=True)
    kept, bad = write_array_store(
        raw, list_images(raw), size, out / "images.npy", params.data.skip_bad_images
    )
    with replacing(out / "index.csv") as tmp:
        kept.to_csv(tmp, index=False)
    write_json(
        out / "summary.json",
        {"input_size": size, "images": len(kept), "skipped_bad_images": len(bad)},
    )
    print(f"prepare: {len(kept)} images at {size}x{size}, {len(bad)} skipped")


if __name__ == "__main__":
    run(main)
