"""The llama.cpp backend opens the packaged GGUF with the model's own context window (a
vocab-only probe reports 0, which left llama.cpp at 512 tokens and aborted on longer prompts)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")


def test_packaged_gguf_gets_its_trained_context_and_takes_a_long_prompt():
    from infuse.llm.llamacpp import LlamaCppChatModel
    from infuse.models import resolve_gguf

    model = LlamaCppChatModel(resolve_gguf("smollm2"))
    assert model.context_window == 8192
    long_prompt = "SQLite supports three threading modes. " * 120  # about 840 tokens: over 512
    reply = model.generate([{"role": "user", "content": long_prompt + "How many modes?"}],
                           max_new_tokens=4, temperature=0.0)
    assert reply.text
