"""Schema extraction with evidence: a scripted OpenAI-compatible server, retries, nulled inventions."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel
from scripted_chat import ScriptedChatServer, in_order

from infuse.errors import ConfigError
from infuse.llm.openai_compat import OpenAIChatModel
from infuse.scrape.structured import evidence_schema, extract_record, load_schema, merge, split_text

PAGE = """# Nimbus Pro

Nimbus Pro is a cloud storage plan for teams.

| Plan | Price |
|---|---|
| Pro | $20 per month |

Features: unlimited buckets, daily backups.

Sold by Nimbus Ltd of Springfield."""

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "price": {"type": "number"},
        "vendor": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "city": {"type": "string"}},
        },
        "features": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name"],
}


def leaf(value, evidence):
    return {"value": value, "evidence": evidence}


GOOD = {
    "name": leaf("Nimbus Pro", "Nimbus Pro is a cloud storage plan"),
    "price": leaf(20, "| Pro | $20 per month |"),
    "vendor": {
        "name": leaf("Nimbus Ltd", "Sold by Nimbus Ltd of Springfield."),
        "city": leaf("Paris", "headquartered in Paris"),
    },
    "features": [
        leaf("unlimited buckets", "Features: unlimited buckets, daily backups."),
        leaf("daily backups", "daily backups"),
    ],
}


@pytest.fixture
def stub():
    servers = []

    def start(answers):
        servers.append(ScriptedChatServer(in_order(answers)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_bad_json_is_retried_and_an_invented_field_is_nulled(stub):
    server = stub(
        ['Sure! Here is the JSON: {"name": ', json.dumps({"name": "x"}), json.dumps(GOOD)]
    )
    with OpenAIChatModel(server.base_url, "stub") as model:
        result = extract_record(
            PAGE, url="https://nimbus.example/pro", schema=SCHEMA, model=model, max_retries=2
        )
    assert result.attempts == 3 and result.error is None
    assert result.data == {
        "name": "Nimbus Pro",
        "price": 20,
        "vendor": {"name": "Nimbus Ltd", "city": None},
        "features": ["unlimited buckets", "daily backups"],
    }
    assert result.flags == [
        {
            "field": "vendor.city",
            "reason": "evidence not found in the page; value nulled",
            "value": "Paris",
            "evidence": "headquartered in Paris",
        }
    ]
    assert result.evidence["price"] == "| Pro | $20 per month |"
    # The retries told the model what was wrong.
    second, third = server.requests[1]["messages"], server.requests[2]["messages"]
    assert "not JSON" in second[-1]["content"]
    assert "does not match the schema" in third[-1]["content"] and "price" in third[-1]["content"]


def test_retries_are_bounded(stub):
    server = stub(["not json"])
    with OpenAIChatModel(server.base_url, "stub") as model:
        result = extract_record(PAGE, url="u", schema=SCHEMA, model=model, max_retries=1)
    assert result.data is None and result.attempts == 2 and len(server.requests) == 2
    assert "no valid answer after 2 attempts" in result.error


def test_value_must_be_in_its_quote(stub):
    answer = dict(GOOD, price=leaf(25, "| Pro | $20 per month |"))
    server = stub([json.dumps(answer)])
    with OpenAIChatModel(server.base_url, "stub") as model:
        result = extract_record(PAGE, url="u", schema=SCHEMA, model=model)
    assert result.data["price"] is None
    assert {flag["field"]: flag["reason"] for flag in result.flags}[
        "price"
    ] == "value not in its evidence quote; value nulled"


def test_long_pages_are_chunked_and_merged(stub):
    answers = [
        json.dumps({**GOOD, "features": [leaf("unlimited buckets", "unlimited buckets")]}),
        json.dumps({**GOOD, "price": leaf(None, None)}),
    ]
    server = stub(answers)
    pieces = split_text(PAGE, 120)
    assert len(pieces) == 2 and all(len(piece) <= 120 for piece in pieces)
    assert split_text("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]
    with OpenAIChatModel(server.base_url, "stub") as model:
        result = extract_record(PAGE, url="u", schema=SCHEMA, model=model, chunk_chars=120)
    assert len(server.requests) == 2
    assert result.data["features"] == ["unlimited buckets", "daily backups"]
    assert result.data["price"] == 20 and result.data["vendor"]["name"] == "Nimbus Ltd"
    # vendor.name's quote is only in the second part: its first-part flag is dropped once found.
    assert "vendor.name" not in {flag["field"] for flag in result.flags}
    assert "vendor.city" in {flag["field"] for flag in result.flags}
    assert merge({"a": None, "b": [1]}, {"a": 2, "b": [1, 3]}) == {"a": 2, "b": [1, 3]}


class Vendor(BaseModel):
    name: str
    city: str | None = None


class Product(BaseModel):
    name: str
    vendor: Vendor
    tags: list[str] = []


def test_pydantic_models_and_schema_files(tmp_path):
    schema = load_schema(Product)
    wrapped = evidence_schema(schema)
    vendor = wrapped["properties"]["vendor"]
    assert vendor["properties"]["city"]["properties"]["value"]["anyOf"][-1] == {"type": "null"}
    assert wrapped["properties"]["tags"]["items"]["required"] == ["value", "evidence"]
    assert load_schema("test_structured:Product") == schema
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA))
    assert load_schema(str(path)) == SCHEMA
    path.write_text("{nope")
    with pytest.raises(ConfigError, match="schema.json: not JSON"):
        load_schema(str(path))
    with pytest.raises(ConfigError, match="no such file"):
        load_schema(str(tmp_path / "missing.json"))
