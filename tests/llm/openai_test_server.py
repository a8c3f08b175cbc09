"""A small OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, stdlib only.

It answers by echoing the last user message's words, streams them as server-sent events, and
reports `usage.prompt_tokens_details.cached_tokens` like a server with a prefix cache: the
number of leading prompt words it saw in the previous request.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ChatServer:
    """Start with `with ChatServer() as server:`; `server.base_url`, `server.requests`."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.previous_prompt: list[str] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def answer(self, body: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """The answer's pieces and usage for one request body."""
        prompt = " ".join(message["content"] for message in body["messages"]).split()
        cached = 0
        for seen, new in zip(self.previous_prompt, prompt):
            if seen != new:
                break
            cached += 1
        self.previous_prompt = prompt
        user = [message["content"] for message in body["messages"] if message["role"] == "user"]
        words = f"You asked: {user[-1] if user else ''}".split()[: body.get("max_tokens", 256)]
        pieces = [word if index == 0 else " " + word for index, word in enumerate(words)]
        text = "".join(pieces)
        for stop in body.get("stop") or []:
            if stop in text:
                text = text[: text.find(stop)]
                pieces = [text]
        usage = {
            "prompt_tokens": len(prompt),
            "completion_tokens": len(words),
            "total_tokens": len(prompt) + len(words),
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        return pieces, usage


def _handler_for(server: ChatServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            if self.path != "/v1/chat/completions":
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                self._send_json(401, {"error": {"message": "invalid api key"}})
                return
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            server.requests.append(body)
            if body.get("model") == "broken":
                self._send_json(500, {"error": {"message": "model crashed"}})
                return
            pieces, usage = server.answer(body)
            if body.get("stream"):
                self._stream(body, pieces, usage)
            else:
                message = {"role": "assistant", "content": "".join(pieces)}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                self._send_json(
                    200,
                    {"id": "c1", "object": "chat.completion", "choices": [choice], "usage": usage},
                )

        def _stream(self, body: dict[str, Any], pieces: list[str], usage: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            events = [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                *({"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces),
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            ]
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append({"choices": [], "usage": usage})
            for event in events:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
