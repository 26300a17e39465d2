#!/usr/bin/env bash
# Wheels of what scripts/gpu_checks.sh needs on a GPU machine whose image has PyTorch but
# not DVC (the remote host's CUDA image: Python 3.12, no network). Run here, where PyPI is
# reachable; then upload .whl/ to the remote host with the working tree (about 20 MB).
#   bash scripts/gpu_wheels.sh [PYTHON_VERSION]      (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-3.12}
pip=(".venv/bin/python" -m pip)
[ -x .venv/bin/python ] || pip=(python3 -m pip)
version() { "${pip[@]}" show "$1" 2>/dev/null | awk '/^Version:/{print $2}'; }
dvc_version=$(version dvc)
dvclive_version=$(version dvclive)
: "${dvc_version:?run make setup first (dvc is not installed in .venv)}"
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
rm -rf .whl && mkdir .whl
# hydra-core's antlr4 runtime is published as a source archive only: build its wheel.
"${pip[@]}" wheel -q --no-deps antlr4-python3-runtime==4.9.3 -w .whl
"${pip[@]}" download -q --only-binary=:all: --find-links .whl --python-version "$py" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  "dvc==$dvc_version" "dvclive==$dvclive_version"
# Leave out what the CUDA image already has (per the remote host's list of the image's
# packages): two versions of a package would stop the install there, and its numpy, pandas
# and torch must win.
image_has="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio
attrs botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy
coverage cycler cython einops filelock flatbuffers fonttools frozenlist fsspec grpcio h11 h5py
hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig jinja2 joblib
kiwisolver lazy-loader markdown markdown-it-py markupsafe matplotlib mdurl ml-dtypes mpmath
msgpack multidict mypy-extensions networkx ninja numpy nvidia-ml-py onnx onnx-ir onnxruntime
onnxscript opencv-python-headless packaging pandas pathspec pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pytest python-dateutil pyyaml regex requests rich safetensors scipy seaborn
setuptools shellingham simplejson six sortedcontainers sympy tabulate threadpoolctl tqdm
torch torchvision triton typer typing-extensions typing-inspect urllib3 uvloop werkzeug wheel
wrapt xxhash yarl zipp"
for wheel in .whl/*.whl; do
  name=$(basename "$wheel" | cut -d- -f1 | tr '_.' '--' | tr '[:upper:]' '[:lower:]')
  for have in $image_has; do
    if [ "$name" = "$have" ]; then rm "$wheel"; break; fi
  done
done
echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/ (dvc $dvc_version, dvclive $dvclive_version, Python $py)"
