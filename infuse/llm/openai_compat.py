"""A client for any OpenAI-compatible chat server (vLLM, llama.cpp server, Ollama, hosted APIs).

Speaks `POST {base_url}/v1/chat/completions` with httpx; streams through server-sent events
when `on_token` is given. Servers with a prefix cache (vLLM) report how many prompt tokens it
served in `usage.prompt_tokens_details.cached_tokens`; that becomes `Generation.cached_tokens`.

A streamed answer that starts repeating itself is cut and the connection closed (the server
stops generating); a whole answer is cut the same way when it arrives. A JSON Schema
`response_format` is sent as OpenAI's `{"type": "json_schema", ...}`; a server that refuses that
form (llama-cpp-python's) is asked once more with `{"type": "json_object", "schema": ...}`, and
that choice is kept. The JSON is validated either way. A stream that is not server-sent events
(an HTML error page from a proxy, say) is a BackendError naming the URL, never an empty answer.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from infuse.closing import Closing
from infuse.errors import BackendError, PromptTooLongError
from infuse.llm.base import ChatModel, GenerateOptions, Generation, Message
from infuse.llm.repetition import DEFAULT_WINDOW, GuardedText, RepetitionGuard, trim_repetition

# How long a request may go without a byte back. A local server on a CPU answers a whole
# (non-streamed) question-generation request of a few hundred tokens in minutes, and queues
# requests behind each other: 120 s cut working runs short.
DEFAULT_TIMEOUT_S = 600.0


def chat_completions_url(base_url: str) -> str:
    """The chat completions endpoint for `base_url` (with or without the trailing `/v1`)."""
    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


def server_models(base_url: str, *, api_key: str | None = None, timeout_s: float = 5.0) -> list[str]:
    """The model ids an OpenAI-compatible server lists at `{base_url}/models`, asked once before
    long work starts so an unreachable server fails in seconds, not after it.

    Returns [] when the server answers but lists nothing readable (some servers have no
    `/models`). Raises BackendError naming the URL when nothing answers there.
    """
    url = chat_completions_url(base_url).removesuffix("/chat/completions") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.TransportError as error:
        raise BackendError(
            f"Cannot reach the chat server at {base_url} ({type(error).__name__}: {error}). "
            "Start it (llama.cpp: `llama-server -m MODEL.gguf --port 8080`; Ollama: "
            "`ollama serve`) or fix --base-url."
        ) from error
    if response.status_code in (401, 403):
        raise BackendError(
            f"The chat server at {base_url} refused the request (HTTP {response.status_code}): "
            "check --api-key."
        )
    try:
        data = response.json().get("data") if response.status_code == 200 else None
    except (ValueError, AttributeError):
        data = None
    return [item["id"] for item in data or [] if isinstance(item, dict) and "id" in item]


class OpenAIChatModel(ChatModel, Closing):
    """A chat model served over HTTP with the OpenAI chat completions API."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = 5.0,
        extra_body: dict[str, Any] | None = None,
        repetition_window: int | None = DEFAULT_WINDOW,
    ) -> None:
        self.url = chat_completions_url(base_url)
        self.timeout_s = timeout_s
        self.name = model
        self.extra_body = dict(extra_body or {})
        self.repetition_window = repetition_window
        self._schema_form = "json_schema"  # or "json_object" once a server refused json_schema
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s)
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def generate_with(self, messages: list[Message], options: GenerateOptions) -> Generation:
        """Send `messages`; stream when `on_token` is given. BackendError errors name the URL.

        A `response_format` is asked of the server and the answer validated; a prompt the server
        says is too long is a PromptTooLongError.
        """
        body: dict[str, Any] = {
            "model": self.name,
            "messages": messages,
            "max_tokens": options.max_new_tokens,
            "temperature": options.temperature,
            **self.extra_body,
        }
        if options.stop:
            body["stop"] = list(options.stop)
        schema = None
        if options.response_format is not None:
            from infuse.llm.structured import check_schema

            schema = check_schema(options.response_format)
        generation = self._send(body, schema, options.on_token)
        if schema is not None:
            from infuse.llm.structured import validate_json

            validate_json(
                generation.text,
                schema,
                source=f"The chat server at {self.url}",
                finish_reason=generation.extra.get("finish_reason"),
            )
        return generation

    def _send(
        self, body: dict[str, Any], schema: dict[str, Any] | None, on_token
    ) -> Generation:
        """One request, asked again in the other structured form if the server refuses the first."""
        from infuse.llm.structured import openai_response_format

        guard = RepetitionGuard(None if schema is not None else self.repetition_window)
        for attempt in range(2):
            if schema is not None:
                body["response_format"] = (
                    openai_response_format(schema)
                    if self._schema_form == "json_schema"
                    else {"type": "json_object", "schema": schema}
                )
            try:
                return self._request(body, guard, on_token)
            except _FormatRefused:
                if attempt or self._schema_form != "json_schema":
                    raise
                self._schema_form = "json_object"
        raise AssertionError("unreachable")

    def _request(self, body: dict[str, Any], guard: RepetitionGuard, on_token) -> Generation:
        started = time.perf_counter()
        try:
            if on_token is None:
                return self._complete(body, guard, started)
            return self._stream(body, guard, on_token, started)
        except httpx.TimeoutException as error:
            raise BackendError(
                f"The chat server at {self.url} sent nothing for {self.timeout_s:.0f} s "
                f"({type(error).__name__}). Check that it is running and not overloaded (one "
                "answer at a time on a CPU), or give it a smaller model."
            ) from error
        except httpx.TransportError as error:
            raise BackendError(
                f"Cannot reach the chat server at {self.url}: {error}. Start the server or fix --base-url."
            ) from error

    def _complete(self, body: dict[str, Any], guard: RepetitionGuard, started: float) -> Generation:
        response = self._client.post(self.url, json=body)
        self._raise_for_status(response, body)
        return self._whole_answer(_json(response, self.url), guard, started, None)

    def _whole_answer(
        self, payload: dict[str, Any], guard: RepetitionGuard, started: float, on_token
    ) -> Generation:
        try:
            choice = payload["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise BackendError(
                f"The chat server at {self.url} answered without choices[0].message: "
                f"{str(payload)[:200]}"
            ) from error
        finish_reason = choice.get("finish_reason")
        text, repeated = trim_repetition(text, guard.window)
        if repeated:
            finish_reason = "repetition"
        if on_token is not None and text:
            on_token(text)
        total = time.perf_counter() - started
        return _generation(text, payload.get("usage"), None, total, finish_reason)

    def _stream(
        self,
        body: dict[str, Any],
        guard: RepetitionGuard,
        on_token: Callable[[str], None],
        started: float,
    ) -> Generation:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        answer = GuardedText(guard, on_token)
        usage: dict[str, Any] | None = None
        finish_reason = None
        events = 0
        with self._client.stream("POST", self.url, json=body) as response:
            if response.status_code >= 400:
                response.read()
                self._raise_for_status(response, body)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type == "application/json":
                # Some servers ignore `stream` and answer whole: take the answer as it is.
                response.read()
                return self._whole_answer(_json(response, self.url), guard, started, on_token)
            if content_type and content_type != "text/event-stream":
                response.read()
                raise BackendError(
                    f"The chat server at {self.url} answered a streamed request with "
                    f"{content_type}, not server-sent events (text/event-stream): "
                    f"{_snippet(response.text)}. Is --base-url the OpenAI-compatible API "
                    "(usually ending in /v1), not a web page or a proxy's error page?"
                )
            other_lines: list[str] = []
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    if line.strip() and not line.startswith((":", "event:", "id:", "retry:")):
                        other_lines.append(line)
                    continue  # blank separators, comments, `event:` lines
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    events += 1
                    break
                try:
                    event = json.loads(data)
                except json.JSONDecodeError as error:
                    raise BackendError(
                        f"The chat server at {self.url} sent an event that is not JSON: {data[:200]}"
                    ) from error
                events += 1
                if not isinstance(event, dict):
                    raise BackendError(
                        f"The chat server at {self.url} sent an event that is not an object: "
                        f"{data[:200]}"
                    )
                if event.get("error"):
                    raise BackendError(f"The chat server at {self.url} failed: {event['error']}")
                usage = event.get("usage") or usage
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    finish_reason = choice.get("finish_reason") or finish_reason
                    if piece and not answer.add(piece):
                        finish_reason = "repetition"
                        break
                if finish_reason == "repetition":
                    break  # leaving the block closes the connection: the server stops
            if events == 0:
                raise BackendError(
                    f"The chat server at {self.url} sent no server-sent events"
                    + (f", only: {_snippet(chr(10).join(other_lines))}" if other_lines else "")
                    + ". Is --base-url an OpenAI-compatible API?"
                )
        text = answer.finish()
        total = time.perf_counter() - started
        ttft = None if answer.first_at is None else answer.first_at - started
        return _generation(text, usage, ttft, total, finish_reason)

    def _raise_for_status(self, response: httpx.Response, body: dict[str, Any]) -> None:
        if response.status_code < 400:
            return
        detail = response.text[:300].strip()
        if response.status_code in (400, 413, 422):
            too_long = _context_exceeded(detail)
            if too_long is not None:
                prompt_tokens, window = too_long
                raise PromptTooLongError(
                    f"The chat server at {self.url} says the prompt does not fit its context "
                    f"window: {detail}. Shorten the question or the knowledge given with it "
                    "(fewer passages, -k), or serve a model with a longer context.",
                    prompt_tokens=prompt_tokens,
                    context_window=window,
                )
        if "response_format" in body and re.search(
            r"response_format|json_schema", detail, re.IGNORECASE
        ):  # llama-cpp-python's server answers 500 for a request it could not validate
            raise _FormatRefused(detail)
        hint = " Check --api-key." if response.status_code in (401, 403) else ""
        if response.status_code == 404:
            hint = " Is this an OpenAI-compatible server, and is the model name right?"
        raise BackendError(
            f"The chat server at {self.url} answered HTTP {response.status_code}: {detail}.{hint}"
        )


class _FormatRefused(BackendError):
    """The server refused the response_format's form (asked again in the other form)."""


def _context_exceeded(detail: str) -> tuple[int | None, int | None] | None:
    """(prompt tokens, context window) when a server's error says the prompt is too long."""
    if not re.search(r"context (length|window)|maximum context|too long|too many tokens", detail, re.I):
        return None
    window = re.search(r"maximum context length is (\d+)|context window of (\d+)", detail)
    prompt = re.search(r"\((\d+) in the messages|\((\d+) in your prompt", detail)

    def first(match):
        return None if match is None else int(next(group for group in match.groups() if group))

    return first(prompt), first(window)


def _snippet(text: str) -> str:
    """The start of a body, tags and runs of space squeezed, for an error message."""
    squeezed = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()
    return repr(squeezed[:160] or text[:160])


def _json(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as error:
        raise BackendError(
            f"The chat server at {url} answered with non-JSON: {response.text[:200]}"
        ) from error
    if not isinstance(payload, dict):
        raise BackendError(
            f"The chat server at {url} answered with {type(payload).__name__}, not an object."
        )
    return payload


def _generation(
    text: str,
    usage: dict[str, Any] | None,
    ttft: float | None,
    total: float,
    finish_reason: str | None,
) -> Generation:
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    return Generation(
        text=text,
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        cached_tokens=details.get("cached_tokens"),
        time_to_first_token_s=ttft,
        total_s=total,
        extra={"finish_reason": finish_reason},
    )
