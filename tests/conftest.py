"""Shared fixtures: tiny random chat models built in milliseconds, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Belt and braces: no test may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny_models import (  # noqa: E402  (after the offline environment is set)
    CHATML_TEMPLATE,
    TOKENIZER_CORPUS,
    build_tiny_model,
    build_tiny_tokenizer,
)

__all__ = ["CHATML_TEMPLATE", "TOKENIZER_CORPUS", "build_tiny_model", "build_tiny_tokenizer"]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny chat model folder (config, safetensors, tokenizer with chatml template)."""
    path = tmp_path_factory.mktemp("tiny-model")
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
