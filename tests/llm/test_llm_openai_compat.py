"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import pytest
from openai_test_server import ChatServer

from infuse.errors import BackendError
from infuse.llm import load_chat_model
from infuse.llm.openai_compat import OpenAIChatModel, chat_completions_url

MESSAGES = [
    {"role": "system", "content": "Knowledge: the refund window is 45 days."},
    {"role": "user", "content": "How long is the refund window?"},
]


@pytest.fixture()
def server():
    with ChatServer() as running:
        yield running


def test_plain_completion_reports_usage_and_cached_tokens(server):
    chat = load_chat_model("served-model", base_url=server.base_url)
    first = chat.generate(MESSAGES, max_new_tokens=50)
    second = chat.generate(MESSAGES[:1] + [{"role": "user", "content": "And for anvils?"}])
    assert first.text == "You asked: How long is the refund window?"
    assert first.prompt_tokens == 13 and first.completion_tokens == 8
    assert first.cached_tokens == 0
    assert second.cached_tokens == 7  # the system turn's words, unchanged between requests
    body = server.requests[0]
    assert body["model"] == "served-model"
    assert body["messages"] == MESSAGES
    assert body["max_tokens"] == 50 and body["temperature"] == 0.0
    assert "stream" not in body


def test_streaming_through_server_sent_events(server):
    chat = load_chat_model("served-model", base_url=server.base_url)
    pieces: list[str] = []
    generation = chat.generate(MESSAGES, on_token=pieces.append)
    # The last 48 characters are held back until the answer ends (the repetition guard may
    # still cut them), so this short answer arrives as one piece.
    assert pieces == ["You asked: How long is the refund window?"] == [generation.text]
    assert generation.prompt_tokens == 13 and generation.cached_tokens == 0
    assert 0 < generation.time_to_first_token_s <= generation.total_s
    assert server.requests[0]["stream"] is True


def test_a_long_answer_streams_in_pieces_as_it_comes(server):
    chat = load_chat_model("served-model", base_url=server.base_url)
    question = [{"role": "user", "content": " ".join(f"word{n}" for n in range(40))}]
    pieces: list[str] = []
    generation = chat.generate(question, on_token=pieces.append)
    assert len(pieces) > 20 and "".join(pieces) == generation.text
    assert generation.text.endswith("word39") and generation.extra["finish_reason"] == "stop"


def test_stop_strings_are_sent(server):
    chat = load_chat_model("served-model", base_url=server.base_url)
    generation = chat.generate(MESSAGES, stop=[" refund"])
    assert server.requests[0]["stop"] == [" refund"]
    assert generation.text == "You asked: How long is the"


def test_api_key_is_sent_and_a_wrong_one_names_the_url():
    with ChatServer(api_key="secret") as running:
        good = load_chat_model("m", base_url=running.base_url, api_key="secret")
        assert good.generate(MESSAGES).text.startswith("You asked")
        bad = load_chat_model("m", base_url=running.base_url, api_key="wrong")
        with pytest.raises(BackendError, match=r"HTTP 401.*api-key") as caught:
            bad.generate(MESSAGES)
        assert running.base_url in str(caught.value)


def test_server_error_is_a_backend_error_naming_the_url(server):
    chat = load_chat_model("broken", base_url=server.base_url)
    for on_token in (None, lambda piece: None):
        with pytest.raises(BackendError, match="HTTP 500") as caught:
            chat.generate(MESSAGES, on_token=on_token)
        assert "model crashed" in str(caught.value)
        assert f"{server.base_url}/chat/completions" in str(caught.value)


def test_down_server_fails_fast_naming_the_url():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chat = OpenAIChatModel(f"http://127.0.0.1:{port}", "m")
    started = time.perf_counter()
    with pytest.raises(
        BackendError, match=f"Cannot reach the chat server at http://127.0.0.1:{port}/v1"
    ):
        chat.generate(MESSAGES)
    assert time.perf_counter() - started < 5


def test_a_server_that_says_nothing_times_out_naming_the_url_and_the_wait():
    """A listening server that never answers (one busy with another client's long answer)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        chat = OpenAIChatModel(f"http://127.0.0.1:{port}/v1", "m", timeout_s=1)
        with pytest.raises(BackendError) as caught:
            chat.generate(MESSAGES)
    message = str(caught.value)
    assert message.startswith(f"The chat server at http://127.0.0.1:{port}/v1/chat/completions "
                              "sent nothing for 1 s (ReadTimeout)")
    assert "raise the timeout" not in message  # no setting to raise it with
    assert load_chat_model("m", base_url="http://127.0.0.1:9/v1").timeout_s == 600


def test_endpoint_url_accepts_base_with_or_without_v1():
    assert chat_completions_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert (
        chat_completions_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"
    )


NESTED_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "kind": {"enum": ["policy", "product"]},
        "facts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["name", "days"],
            },
        },
    },
    "required": ["title", "kind", "facts"],
}


def test_json_schema_response_format_is_sent_and_the_answer_validated(server):
    import json

    chat = load_chat_model("served-model", base_url=server.base_url)
    generation = chat.generate(MESSAGES, response_format=NESTED_SCHEMA)
    sent = server.requests[0]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"] == NESTED_SCHEMA
    assert json.loads(generation.text) == {
        "title": "x", "kind": "policy", "facts": [{"name": "x", "days": 1}]
    }


def test_a_server_that_refuses_json_schema_is_asked_with_json_object_once():
    with ChatServer(refuse_json_schema=True) as running:
        chat = load_chat_model("m", base_url=running.base_url)
        first = chat.generate(MESSAGES, response_format=NESTED_SCHEMA)
        second = chat.generate(MESSAGES, response_format=NESTED_SCHEMA, on_token=lambda p: None)
    forms = [request["response_format"]["type"] for request in running.requests]
    assert forms == ["json_schema", "json_object", "json_object"]
    assert running.requests[1]["response_format"]["schema"] == NESTED_SCHEMA
    assert first.text == second.text and '"kind": "policy"' in first.text


def test_an_answer_that_breaks_the_schema_is_a_backend_error(server):
    schema = {"type": "object", "properties": {"kind": {"enum": ["a", "b"]}}, "required": ["kind"]}
    ignores = load_chat_model("ignores-format", base_url=server.base_url)
    with pytest.raises(BackendError, match=r"at http://127.0.0.1:\d+/v1/chat/completions answered text that is not JSON"):
        ignores.generate(MESSAGES, response_format=schema)
    wrong = load_chat_model("wrong-json", base_url=server.base_url)
    with pytest.raises(BackendError, match=r"does not match the schema at kind: 'c' is not one of"):
        wrong.generate(MESSAGES, response_format=schema, on_token=lambda piece: None)


def test_a_schema_that_is_not_json_schema_is_refused_before_sending(server):
    from infuse.errors import ConfigError

    chat = load_chat_model("served-model", base_url=server.base_url)
    with pytest.raises(ConfigError, match="not a valid JSON Schema"):
        chat.generate(MESSAGES, response_format={"type": "objekt"})
    assert server.requests == []


def test_a_repeating_stream_is_cut_and_the_connection_closed(server):
    sentence = "The refund window is 45 days."
    chat = load_chat_model("served-model", base_url=server.base_url)
    question = [{"role": "user", "content": " ".join([sentence] * 30)}]
    pieces: list[str] = []
    streamed = chat.generate(question, on_token=pieces.append)
    assert streamed.text == f"You asked: {sentence}"
    assert "".join(pieces) == streamed.text
    assert streamed.extra["finish_reason"] == "repetition"
    assert server.closed_early.wait(5), "the client kept reading after the repeat"
    whole = chat.generate(question)
    assert whole.text == streamed.text and whole.extra["finish_reason"] == "repetition"


@pytest.mark.parametrize(
    ("model", "expected"),
    [("html", r"text/html, not server-sent events.*'Sign in'"),
     ("plain", r"text/plain, not server-sent events")],
)
def test_a_stream_that_is_not_server_sent_events_names_the_url(server, model, expected):
    chat = load_chat_model(model, base_url=server.base_url)
    with pytest.raises(BackendError, match=expected) as caught:
        chat.generate(MESSAGES, on_token=lambda piece: None)
    assert f"{server.base_url}/chat/completions" in str(caught.value)


def test_a_context_length_error_is_a_prompt_too_long_error(server):
    from infuse.errors import PromptTooLongError

    chat = load_chat_model("small-context", base_url=server.base_url)
    for on_token in (None, lambda piece: None):
        with pytest.raises(PromptTooLongError, match="does not fit its context window") as caught:
            chat.generate(MESSAGES, on_token=on_token)
        assert caught.value.context_window == 64 and caught.value.prompt_tokens == 290
