"""Schema extraction with the packaged default model and constrained decoding (slow: real model)."""

from __future__ import annotations

import inspect

import pytest

from infuse.scrape.structured import extract_record, normalise

pytestmark = pytest.mark.slow

PAGE = """# Nimbus Pro

Nimbus Pro is a storage plan for teams. It costs $20 per month.

Sold by Nimbus Ltd, Springfield."""

SCHEMA = {
    "type": "object",
    "properties": {"product": {"type": "string"}, "price": {"type": "string"}},
    "required": ["product", "price"],
}


def test_packaged_model_gives_schema_valid_output_with_evidence():
    from jsonschema import Draft202012Validator

    from infuse.llm import load_chat_model

    # The transformers backend constrains decoding with a JSON grammar (xgrammar).
    backend = {"backend": "transformers"} if "backend" in inspect.signature(load_chat_model).parameters else {}
    model = load_chat_model(**backend)
    if "response_format" not in inspect.signature(model.generate).parameters:
        pytest.skip("this ChatModel has no response_format yet (the llm branch adds it)")
    result = extract_record(
        PAGE, url="https://nimbus.example/pro", schema=SCHEMA, model=model, max_new_tokens=200
    )
    assert result.error is None and result.attempts == 1  # constrained: valid on the first try
    nullable = {
        "type": "object",
        "properties": {k: {"type": ["string", "null"]} for k in SCHEMA["properties"]},
    }
    assert not list(Draft202012Validator(nullable).iter_errors(result.data))
    for field, value in result.data.items():  # every kept value is proven by a quote on the page
        if value is not None:
            assert normalise(result.evidence[field]) in normalise(PAGE)
    assert any(value is not None for value in result.data.values()) or result.flags
