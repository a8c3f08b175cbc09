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


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory):
    """A tiny random sentence embedder (built as tests/knowledge builds it), once per module."""
    from knowledge.conftest import build_tiny_embedder

    from infuse.knowledge.embeddings import Embedder

    return Embedder(str(build_tiny_embedder(tmp_path_factory.mktemp("embedder"))), device="cpu")


@pytest.fixture
def refunds_kb(tmp_path, tiny_embedder):
    """A knowledge base of two files: the refund policy (45 days) and the office (Springfield)."""
    from infuse.knowledge.kb import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policies.md").write_text("# Policies\n\n## Refunds\n\nThe refund window is 45 days.\n")
    (docs / "office.txt").write_text("Our office is in Springfield.")
    knowledge = KnowledgeBase(tmp_path / "kb", create=True, embedder=tiny_embedder)
    knowledge.add([docs])
    yield knowledge
    knowledge.close()
