"""A small OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, stdlib only.

It answers by echoing the last user message's words, streams them as server-sent events, and
reports `usage.prompt_tokens_details.cached_tokens` like a server with a prefix cache: the
number of leading prompt words it saw in the previous request.

Asked for a JSON Schema `response_format`, it answers the first instance of the schema (enums
take their first value, strings "x", numbers 1, arrays one item); with
`refuse_json_schema=True` it refuses the `json_schema` form as llama-cpp-python's server does
(HTTP 422) and accepts `{"type": "json_object", "schema": ...}`. Some model names misbehave on
purpose: "broken" (HTTP 500), "html" (an HTML page with status 200, as a proxy's login page),
"plain" (text/plain lines that are not events), "small-context" (the context-length error of
llama-cpp-python's server), "ignores-format" (echoes, whatever the format), "wrong-json"
(`{"kind": "c"}` whatever the schema).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ChatServer:
    """Start with `with ChatServer() as server:`; `server.base_url`, `server.requests`."""

    def __init__(self, api_key: str | None = None, refuse_json_schema: bool = False) -> None:
        self.api_key = api_key
        self.refuse_json_schema = refuse_json_schema
        self.closed_early = threading.Event()  # a streaming client hung up before [DONE]
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
        schema = _schema_of(body.get("response_format"))
        answer = f"You asked: {user[-1] if user else ''}"
        if schema is not None and body.get("model") == "wrong-json":
            answer = json.dumps({"kind": "c"})
        elif schema is not None and body.get("model") != "ignores-format":
            answer = json.dumps(_instance(schema))
        words = answer.split()[: body.get("max_tokens", 256)]
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
            model = body.get("model")
            if model == "broken":
                self._send_json(500, {"error": {"message": "model crashed"}})
                return
            if model == "html":
                self._send(200, "text/html; charset=utf-8", b"<html><body><h1>Sign in</h1></body></html>")
                return
            if model == "plain":
                self._send(200, "text/plain", b"hello\nthis is not an event stream\n")
                return
            if model == "small-context":
                message = (
                    "This model's maximum context length is 64 tokens. However, you requested "
                    "300 tokens (290 in the messages, 10 in the completion). Please reduce the "
                    "length of the messages or completion."
                )
                self._send_json(400, {"error": {"message": message, "code": "context_length_exceeded"}})
                return
            form = (body.get("response_format") or {}).get("type")
            if server.refuse_json_schema and form == "json_schema":
                self._send_json(422, {"detail": [{"loc": ["body", "response_format", "type"],
                                                  "msg": "Input should be 'text' or 'json_object'"}]})
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
            try:
                for event in events:
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(0.002)  # one token at a time, so a client can hang up midway
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                server.closed_early.set()

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(payload).encode())

        def _send(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format:
        return None
    if response_format.get("type") == "json_schema":
        return response_format["json_schema"]["schema"]
    return response_format.get("schema")


def _instance(schema: dict[str, Any]) -> Any:
    """The first value a schema allows (enough of JSON Schema for the tests)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: _instance(sub) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_instance(schema.get("items", {"type": "string"}))]
    return {"string": "x", "integer": 1, "number": 1.5, "boolean": True}.get(kind)
