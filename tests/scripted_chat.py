"""A real OpenAI-compatible chat server on 127.0.0.1 whose replies a test scripts (the one fake:
a hosted model cannot run here). Non-streaming; `tests/llm/openai_test_server.py` is the full one.

    with ScriptedChatServer(lambda messages: "Q: ...\nA: ...") as server:
        load_chat_model("stub", base_url=server.base_url)
    server = ScriptedChatServer(in_order(['{"a": 1}', '{"a": 2}']))  # ... server.close()
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = Callable[[list[dict]], str]


def in_order(answers: list[str]) -> Reply:
    """A reply that gives `answers` one per request, in order (the last one repeats)."""
    given = [0]

    def reply(messages: list[dict]) -> str:
        given[0] += 1
        return answers[min(given[0], len(answers)) - 1]

    return reply


class ScriptedChatServer:
    """Answers POST /v1/chat/completions with `reply(messages)`; keeps each request body in
    `requests`; lists `models` at GET /v1/models (None: no such route, 404). Serving from the
    start; `close()` or leave a `with` block to stop it."""

    def __init__(self, reply: Reply, models: list[str] | None = None) -> None:
        self.reply = reply
        self.models = models
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if owner.models is None or self.path.rstrip("/") != "/v1/models":
                    self.send_error(404)
                    return
                payload = json.dumps({"object": "list", "data": [
                    {"id": name, "object": "model"} for name in owner.models]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                owner.requests.append(body)
                content = owner.reply(body["messages"])
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
                payload = json.dumps(
                    {
                        "id": "stub",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "stub"),
                        "choices": [choice],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> ScriptedChatServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
