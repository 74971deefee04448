#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.py needs on a GPU machine that has no network: its Python 3.12 image holds a
# CUDA build of torch, transformers, tokenizers, numpy, tqdm and packaging, but not deepspeed nor deepspeed's
# pydantic and hjson. Run this here (with network), once; it fills DIR (default .gpu_wheels/, gitignored):
#
#     bash benchmarks/gpu_wheels.sh [DIR]
#
# then carry DIR to the GPU machine and run there, from the checkout (ninja and nvcc for DeepSpeed's JIT builds of
# FusedAdam and FusedLamb: the image's, else the ninja wheel's, put first on PATH):
#
#     python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/pydeps .gpu_wheels/*.whl && \
#       PATH=/tmp/pydeps/bin:$PATH PYTHONPATH=/tmp/pydeps:$PWD python3 benchmarks/gpu_check.py --out_dir OUT
#
# What it fetches: deepspeed's install requirements except torch, numpy, tqdm and packaging (which the image has),
# and pydantic's. DeepSpeed publishes only an sdist: it is built here into a py3-none-any wheel with no compiled
# ops (DS_BUILD_OPS=0; the GPU machine JIT-compiles the ones it uses), against this machine's torch, which only
# setup.py reads. Binary wheels are CPython 3.12 manylinux x86_64 ones. Afterwards the script checks that the
# wheels import from a clean --target directory: all of them under python3.12 where one is installed (pydantic's
# compiled core, hjson, msgpack, psutil; not deepspeed, which needs torch), and deepspeed with the pure-Python
# ones under this machine's python3 (its own torch and pydantic-core beside them).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.gpu_wheels}
mkdir -p "$DIR"
PY=${PYTHON:-python3}
DEEPSPEED=deepspeed==0.19.8
# Versions tested with deepspeed 0.19.8 here (pydantic-core is the one pydantic 2.13.4 pins).
PURE=(pydantic==2.13.4 annotated-types==0.7.0 typing-inspection==0.4.2 typing-extensions==4.16.0 hjson==3.1.0
  einops==0.8.2 py-cpuinfo==9.0.0)
BINARY=(pydantic-core==2.46.4 msgpack==1.2.4 psutil==7.2.2 ninja==1.13.2)

"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DIR" "${PURE[@]}" "${BINARY[@]}"
if ! ls "$DIR"/deepspeed-0.19.8-*.whl >/dev/null 2>&1; then
  # --no-build-isolation: setup.py imports torch (this machine's) to decide which ops it could build; with
  # DS_BUILD_OPS=0 it builds none.
  DS_BUILD_OPS=0 "$PY" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
    --no-binary deepspeed -w "$DIR" "$DEEPSPEED"
fi
case "$(ls "$DIR"/deepspeed-0.19.8-*.whl)" in
  *-py3-none-any.whl) ;;
  *) echo "gpu_wheels: the deepspeed wheel is not py3-none-any: $(ls "$DIR"/deepspeed-*.whl)" >&2; exit 1 ;;
esac

# Import checks from clean --target directories (nothing but the wheels in them).
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
PY312=${PYTHON312:-}
if [ -z "$PY312" ]; then  # the first python3.12 that runs (a pyenv shim may exist and refuse)
  for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
    if "$candidate" -c "" 2>/dev/null; then PY312=$candidate; break; fi
  done
fi
if [ -n "$PY312" ]; then
  "$PY312" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --target "$check/py312" \
    "$DIR"/*.whl
  PYTHONPATH="$check/py312" "$PY312" -s -c "
import hjson, msgpack, psutil, pydantic, pydantic_core, cpuinfo, einops, typing_inspection, annotated_types
assert pydantic.__file__.startswith('$check'), pydantic.__file__
from pydantic import BaseModel
class M(BaseModel):
    x: int
assert M(x='3').x == 3  # the compiled core validates
print('gpu_wheels: python3.12 imports pydantic', pydantic.VERSION, 'with its compiled core, hjson, msgpack, psutil')
"
  test -x "$check/py312/bin/ninja" && "$check/py312/bin/ninja" --version >/dev/null
else
  echo "gpu_wheels: no python3.12 here: the compiled wheels were not import-checked"
fi
pure=()
for w in "$DIR"/deepspeed-*.whl "$DIR"/*-py3-none-any.whl "$DIR"/*-py2.py3-none-any.whl; do
  [ -e "$w" ] && pure+=("$w")
done
"$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --target "$check/pure" \
  "${pure[@]}"
PYTHONPATH="$check/pure" DS_ACCELERATOR=cpu "$PY" -c "
import deepspeed, hjson, pydantic
for m in (deepspeed, hjson, pydantic):
    assert m.__file__.startswith('$check'), m.__file__
from deepspeed.ops.op_builder import FusedAdamBuilder, FusedLambBuilder  # the JIT builders the check loads
print('gpu_wheels: $PY imports deepspeed', deepspeed.__version__, 'from the wheel (no GPU, no compiled ops)')
" 2>&1 | grep -v "Setting accelerator to CPU"
echo "gpu_wheels: $(ls "$DIR"/*.whl | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $DIR"
