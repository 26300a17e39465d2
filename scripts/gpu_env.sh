# Sourced by the GPU scripts (gpu_checks.sh, gpu_reproduce.sh), from the repository root:
# sets PY (a Python with torch, dvc and dvclive), PATH (dvc, and `python` for the stages)
# and PYTHONPATH (this repository's src). On the remote host's CUDA image, which has
# torch but not dvc, the wheels carried in .whl/ (scripts/gpu_wheels.sh) are installed.
repo=$PWD
if [ -x .venv/bin/python ]; then
  PY=$repo/.venv/bin/python
  export PATH=$repo/.venv/bin:$PATH
else
  PY=$(command -v python3)
  if [ -d .whl ] && ! "$PY" -c "import dvc, dvclive" 2>/dev/null; then
    echo "installing the carried wheels (.whl/)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/gpu-site .whl/*.whl || echo "warning: wheels did not install"
    export PYTHONPATH=/tmp/gpu-site${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/gpu-site/bin:$PATH
  fi
  mkdir -p /tmp/gpu-bin && ln -sf "$PY" /tmp/gpu-bin/python # the stages' `python`
  export PATH=/tmp/gpu-bin:$PATH
fi
export PYTHONPATH=$repo/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 DVC_STUDIO_OFFLINE=true DVC_NO_ANALYTICS=1 DVC_NO_UPDATE_CHECK=1
