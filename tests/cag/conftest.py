"""Fixtures for CAG tests: a tiny chat model with a 2k context and a small knowledge pack."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

KNOWLEDGE = """# Acme Corp policies

The refund window is 45 days. Acme Corp sells rockets and anvils.
Rockets ship from Tucson; anvils weigh 50 kg.
"""


def _load(module_name: str, location: Path):
    spec = importlib.util.spec_from_file_location(module_name, location)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_tiny_model(path: Path, *, seed: int, max_position_embeddings: int = 2048) -> Path:
    """Save the suite's tiny random chatml model (tests/conftest.py builds it) with a longer context."""
    root = _load("infuse_tests_root_conftest", Path(__file__).parents[1] / "conftest.py")
    tokenizer = root.build_tiny_tokenizer()
    model = root.build_tiny_model(
        tokenizer, seed=seed, max_position_embeddings=max_position_embeddings
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def long_context_model_dir(tmp_path_factory) -> Path:
    """The tiny random chatml model, with room for 2048 positions."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-2k"), seed=3)


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    """Another tiny model, same shape and tokenizer, other weights."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-2k-other"), seed=11)


@pytest.fixture()
def knowledge_file(tmp_path) -> Path:
    path = tmp_path / "acme.md"
    path.write_text(KNOWLEDGE)
    return path


@pytest.fixture()
def chat_server():
    """The stdlib OpenAI-compatible test server from tests/llm (a real HTTP server on 127.0.0.1)."""
    module = _load(
        "openai_test_server", Path(__file__).parents[1] / "llm" / "openai_test_server.py"
    )
    with module.ChatServer() as server:
        yield server
