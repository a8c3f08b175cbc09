"""Fixtures for the answer methods: a real LanceDB knowledge base with the tiny random embedder,
and the tiny random chat model with room for RAG prompts (2048 positions)."""

from __future__ import annotations

from pathlib import Path

import pytest

DOCS = {
    "refunds.md": "# Refunds\n\nTo request a refund, email refunds@acme.test with the order "
    "number. The refund is paid back to the card within ten business days.\n",
    "shipping.md": "# Shipping\n\nParcels ship from Tucson. Delivery takes three business "
    "days by courier; express delivery costs extra.\n",
    "office.md": "# Office\n\nOur office is in Springfield, next to the river. Support "
    "answers email within one day.\n",
    "warranty.md": "# Warranty\n\nThe warranty covers manufacturing defects for two years "
    "from the purchase date.\n",
}


@pytest.fixture(scope="session")
def embedder_dir(tmp_path_factory) -> Path:
    from knowledge.conftest import build_tiny_embedder  # tests/knowledge: the same tiny embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("embedder"))


@pytest.fixture(scope="session")
def chat_model_dir(tmp_path_factory) -> Path:
    """The suite's tiny random chatml model, with 2048 positions (RAG prompts fit)."""
    from tiny_models import build_tiny_model, build_tiny_tokenizer

    path = tmp_path_factory.mktemp("tiny-chat-2k")
    tokenizer = build_tiny_tokenizer()
    build_tiny_model(tokenizer, seed=5, max_position_embeddings=2048).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def docs_dir(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture()
def kb_dir(tmp_path, docs_dir, embedder_dir) -> Path:
    """A real LanceDB knowledge base folder holding DOCS (closed again: sessions open it)."""
    from infuse.methods import open_knowledge_base

    location = tmp_path / "kb"
    kb = open_knowledge_base(location, [docs_dir], embedder=str(embedder_dir))
    assert len(kb.documents()) == len(DOCS)
    kb.close()
    return location
