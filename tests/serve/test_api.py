"""The OpenAI-compatible API through the official `openai` client, against a real `infuse serve`
on 127.0.0.1 (tiny local model, real minilm knowledge base, a real assistant profile)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from serve_support import ServerProcess, subprocess_env

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def server(api_env, tmp_path_factory):
    log = tmp_path_factory.mktemp("api-log") / "server.log"
    process = ServerProcess(
        ["--kb", str(api_env["kb"]), "--model", str(api_env["model"]), "--profile", str(api_env["profile"]),
         "--runs", str(api_env["runs"]), "--allow-root", str(api_env["docs"]), "--max-new-tokens", "8",
         "--queue-size", "4", "--no-grounding"],
        log,
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_one_per_method_auto_first(client):
    models = client.models.list()
    ids = [model.id for model in models.data]
    assert ids == ["infuse-auto", "infuse-rag", "infuse-cag", "infuse-base", "infuse-lora:acme",
                   "infuse-lora+rag:acme"]
    auto = models.data[0].model_extra
    assert auto["method"] == "auto" and "serves rag" in auto["description"]


def test_plain_answer_with_usage_citations_and_method(client):
    response = client.chat.completions.create(
        model="infuse-rag", messages=[{"role": "user", "content": "How long is the refund window?"}],
        max_tokens=6,
    )
    assert response.object == "chat.completion"
    assert isinstance(response.choices[0].message.content, str)
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens > 20 and 0 < response.usage.completion_tokens <= 6
    extra = response.model_extra
    assert isinstance(extra["citations"], list)
    assert extra["infuse"]["method"] == "rag"
    assert extra["infuse"]["passages"][0]["source"].endswith("refund.md")


def test_stream_ends_with_citations_usage_and_done(server, client):
    stream = client.chat.completions.create(
        model="infuse-rag", messages=[{"role": "user", "content": "How many days do refunds take?"}],
        max_tokens=12, stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert len(text) > 0
    finals = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert len(finals) == 1 and isinstance(finals[0].model_extra["citations"], list)
    assert finals[0].model_extra["infuse"]["method"] == "rag"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    # the raw stream ends with the OpenAI end marker
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=60, json={
        "model": "infuse-base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
        "stream": True,
    }) as raw:
        lines = [line for line in raw.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_cag_reports_cached_knowledge_tokens(client):
    for _ in range(2):
        response = client.chat.completions.create(
            model="infuse-cag", messages=[{"role": "user", "content": "How long does shipping take?"}],
            max_tokens=4,
        )
    cached = response.usage.prompt_tokens_details.cached_tokens
    assert cached > 50  # the three documents, served from the KV cache
    assert response.usage.prompt_tokens > cached
    assert response.model_extra["infuse"]["method"] == "cag"


def test_follow_up_retrieves_the_earlier_subject(client):
    history = [
        {"role": "user", "content": "What does the warranty cover?"},
        {"role": "assistant", "content": "Manufacturing defects."},
    ]
    response = client.chat.completions.create(
        model="infuse-rag", messages=[*history, {"role": "user", "content": "and for how long?"}], max_tokens=4,
    )
    info = response.model_extra["infuse"]
    assert "warranty" in info["retrieval_query"].lower()
    assert info["passages"][0]["source"].endswith("warranty.md")


def test_auto_answers_with_the_profile_winner_and_falls_back(client):
    answered = client.chat.completions.create(
        model="infuse-auto", messages=[{"role": "user", "content": "How long is the refund window?"}], max_tokens=4,
    )
    assert answered.model_extra["infuse"]["method"] == "rag"
    assert answered.model_extra["infuse"]["fallback_from"] is None
    # nothing in the knowledge base is about this: rag declines, cag (the whole knowledge) answers
    declined = client.chat.completions.create(
        model="infuse-auto", messages=[{"role": "user", "content": "Which opera did Verdi write in 1853?"}],
        max_tokens=4,
    )
    info = declined.model_extra["infuse"]
    assert info["method"] == "cag" and info["fallback_from"] == "rag"
    assert "no answer" not in declined.choices[0].message.content.lower()


def test_errors_in_openai_shape(client):
    with pytest.raises(openai.NotFoundError, match="No model 'gpt-4'"):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="last message must be a user message"):
        client.chat.completions.create(model="infuse-rag", messages=[{"role": "assistant", "content": "hi"}])


def test_kb_add_from_another_process_is_seen(server, client, api_env):
    new_file = api_env["docs"] / "office.md"
    new_file.write_text("# Office\n\nThe office parrot is called Captain Flint and speaks Latin.\n")
    before = client.chat.completions.create(
        model="infuse-cag", messages=[{"role": "user", "content": "hello"}], max_tokens=2,
    ).usage.prompt_tokens_details.cached_tokens
    done = subprocess.run(
        [sys.executable, "-m", "infuse", "kb", "add", str(new_file), "--kb", str(api_env["kb"])],
        capture_output=True, text=True, env=subprocess_env(), timeout=300,
    )
    assert done.returncode == 0, done.stderr
    response = client.chat.completions.create(
        model="infuse-rag", messages=[{"role": "user", "content": "What is the office parrot called?"}],
        max_tokens=4,
    )
    assert response.model_extra["infuse"]["passages"][0]["source"] == str(new_file)
    # CAG: rebuilt in the background; never answered from the stale cache meanwhile
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            after = client.chat.completions.create(
                model="infuse-cag", messages=[{"role": "user", "content": "hello"}], max_tokens=2,
            ).usage.prompt_tokens_details.cached_tokens
        except openai.APIStatusError as error:
            assert error.status_code == 503 and "being rebuilt" in str(error)
            time.sleep(0.5)
            continue
        if after > before:
            break
        time.sleep(0.5)
    assert after > before


def test_health_and_ready(server):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/ready").json()
    assert ready["status"] == "ready" and "infuse-auto" in ready["models"]
    assert len(ready["queues"]) == 2  # one worker for the base model, one for the run's adapter


def test_fine_tuned_run_alone_and_with_retrieval(client):
    question = [{"role": "user", "content": "How long does shipping take?"}]
    alone = client.chat.completions.create(model="infuse-lora:acme", messages=question, max_tokens=4)
    assert alone.model_extra["infuse"]["method"] == "lora" and alone.model_extra["infuse"]["passages"] == []
    grounded = client.chat.completions.create(model="infuse-lora+rag:acme", messages=question, max_tokens=4)
    info = grounded.model_extra["infuse"]
    assert info["method"] == "lora+rag" and info["passages"][0]["source"].endswith("shipping.md")


# Over-filling and disconnecting: a server with one queue place and long generations -----------


@pytest.fixture(scope="module")
def tight_server(api_env, tmp_path_factory):
    log = tmp_path_factory.mktemp("tight-log") / "server.log"
    process = ServerProcess(
        ["--kb", str(api_env["kb"]), "--model", str(api_env["model"]), "--methods", "base",
         "--queue-size", "1"],
        log,
    )
    yield process
    process.stop()


def _ask(url: str, max_tokens: int, results: list, barrier: threading.Barrier | None = None) -> None:
    if barrier is not None:
        barrier.wait()
    response = httpx.post(url + "/v1/chat/completions", timeout=120, json={
        "model": "infuse-base", "messages": [{"role": "user", "content": "Tell me a story."}],
        "max_tokens": max_tokens,
    })
    results.append(response)


def _queues(server) -> dict:
    return httpx.get(server.url + "/ready").json()["queues"]["base"]


def test_full_queue_gives_429_with_retry_after_then_recovers(tight_server):
    results: list[httpx.Response] = []
    barrier = threading.Barrier(10)
    threads = [threading.Thread(target=_ask, args=(tight_server.url, 40, results, barrier)) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(response.status_code for response in results)
    assert set(statuses) <= {200, 429}, statuses
    refused = [response for response in results if response.status_code == 429]
    assert len(refused) >= 5 and statuses.count(200) >= 1
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].json()["error"]["type"] == "rate_limit_error"
    after: list[httpx.Response] = []
    _ask(tight_server.url, 4, after)
    assert after[0].status_code == 200


def _raw_stream(server, max_tokens: int) -> socket.socket:
    """A streaming request on a plain socket, so the test decides exactly when the client goes."""
    body = json.dumps({
        "model": "infuse-base", "messages": [{"role": "user", "content": "Tell me a story."}],
        "max_tokens": max_tokens, "stream": True,
    }).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    )
    assert sock.recv(64).startswith(b"HTTP/1.1 200")
    return sock


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.time() + timeout_s
    while not condition() and time.time() < deadline:
        time.sleep(0.1)


def test_disconnecting_client_frees_its_place(tight_server):
    running = _raw_stream(tight_server, 5000)
    _wait_for(lambda: _queues(tight_server)["running"])
    queued = _raw_stream(tight_server, 5000)
    _wait_for(lambda: _queues(tight_server)["waiting"] == 1)
    assert _queues(tight_server)["waiting"] == 1
    refused: list[httpx.Response] = []
    _ask(tight_server.url, 4, refused)
    assert refused[0].status_code == 429  # the one place is taken
    queued.close()  # the waiting client goes away: its place is freed at once
    _wait_for(lambda: _queues(tight_server)["waiting"] == 0)
    state = _queues(tight_server)
    assert state["waiting"] == 0 and state["running"] and state["cancelled"] >= 1
    running.close()  # the generating client goes away: its generation stops
    _wait_for(lambda: not _queues(tight_server)["running"])
    state = _queues(tight_server)
    assert not state["running"] and state["cancelled"] >= 2
    answered: list[httpx.Response] = []
    _ask(tight_server.url, 4, answered)
    assert answered[0].status_code == 200


def test_mcp_ask_by_rag_cag_and_auto_on_the_same_server(server):
    """`infuse serve` also serves MCP at /mcp: ask through the SDK client, each method."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def main():
        http = httpx2.AsyncClient(timeout=httpx2.Timeout(120))
        async with Client(streamable_http_client(server.url + "/mcp", http_client=http),
                          read_timeout_seconds=120) as client:
            results = {}
            for method in ("rag", "cag", "auto"):
                result = await client.call_tool(
                    "ask", {"question": "How long is the refund window?", "method": method, "max_new_tokens": 4}
                )
                assert not result.is_error, result.content
                results[method] = result.structured_content
            declined = await client.call_tool(
                "ask", {"question": "Which opera did Verdi write in 1853?", "method": "auto", "max_new_tokens": 4}
            )
            summary = await client.call_tool("eval_summary", {})
        return results, declined.structured_content, summary.structured_content

    results, declined, summary = anyio.run(main)
    assert results["rag"]["method"] == "rag" and results["cag"]["method"] == "cag"
    assert results["auto"]["method"] == "rag" and results["auto"]["requested_method"] == "auto"
    assert all(isinstance(result["citations"], list) for result in results.values())
    assert results["rag"]["timings"]["total_s"] > 0
    assert declined["method"] == "cag" and declined["fallback_from"] == "rag"
    assert summary["available"] and summary["winner"] == "rag"
    assert {method["name"] for method in summary["methods"]} == {"rag", "cag", "base"}


def test_loading_answers_503_with_retry_after(api_env, start_server, tmp_path):
    persona = tmp_path / "persona.txt"
    persona.write_text("You are Nimbus, the cheerful support assistant of Acme Corp.")
    loading = start_server(
        ["--kb", str(api_env["kb"]), "--model", str(api_env["model"]), "--methods", "base",
         "--persona", str(persona)],
        ready=False,
    )
    response = httpx.get(loading.url + "/v1/models")
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "loading"
    assert httpx.get(loading.url + "/ready").status_code == 503
    _wait_for(lambda: httpx.get(loading.url + "/ready").status_code == 200, timeout_s=120)
    ready = httpx.get(loading.url + "/ready").json()
    assert ready["persona"].startswith("You are Nimbus")
    assert [model["id"] for model in httpx.get(loading.url + "/v1/models").json()["data"]] == ["infuse-base"]


def test_the_base_model_name_answers_as_infuse_base_with_the_clients_system_turn(client, api_env):
    """A client pointed at infuse serve as at llama.cpp (`infuse quickstart --base-url`) names
    the `--model` it was started with, and sends its own instructions in a system turn: those
    replace infuse-base's default instruction (two instructions confuse a small model)."""
    question = {"role": "user", "content": "How long is the refund window?"}
    plain = client.chat.completions.create(model="infuse-base", messages=[question], max_tokens=2)
    own = client.chat.completions.create(
        model=str(api_env["model"]), messages=[{"role": "system", "content": "Be brief."}, question],
        max_tokens=2,
    )
    assert own.model_extra["infuse"]["method"] == "base"
    assert own.usage.prompt_tokens < plain.usage.prompt_tokens  # the default one was replaced
