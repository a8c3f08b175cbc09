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
    assert len(pieces) == 8
    assert "".join(pieces) == generation.text == "You asked: How long is the refund window?"
    assert generation.prompt_tokens == 13 and generation.cached_tokens == 0
    assert 0 < generation.time_to_first_token_s <= generation.total_s
    assert server.requests[0]["stream"] is True


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


def test_endpoint_url_accepts_base_with_or_without_v1():
    assert chat_completions_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert (
        chat_completions_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"
    )
