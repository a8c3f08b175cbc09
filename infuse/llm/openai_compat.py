"""A client for any OpenAI-compatible chat server (vLLM, llama.cpp server, Ollama, hosted APIs).

Speaks `POST {base_url}/v1/chat/completions` with httpx; streams through server-sent events
when `on_token` is given. Servers with a prefix cache (vLLM) report how many prompt tokens it
served in `usage.prompt_tokens_details.cached_tokens`; that becomes `Generation.cached_tokens`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from infuse.errors import BackendError
from infuse.llm.base import Generation, Message


def chat_completions_url(base_url: str) -> str:
    """The chat completions endpoint for `base_url` (with or without the trailing `/v1`)."""
    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


class OpenAIChatModel:
    """A chat model served over HTTP with the OpenAI chat completions API."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.url = chat_completions_url(base_url)
        self.name = model
        self.extra_body = dict(extra_body or {})
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s)
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> OpenAIChatModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def generate(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Generation:
        """Send `messages`; stream when `on_token` is given. Raises BackendError naming the URL."""
        body: dict[str, Any] = {
            "model": self.name,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            **self.extra_body,
        }
        if stop:
            body["stop"] = list(stop)
        started = time.perf_counter()
        try:
            if on_token is None:
                return self._complete(body, started)
            return self._stream(body, on_token, started)
        except httpx.TimeoutException as error:
            raise BackendError(
                f"The chat server at {self.url} did not answer in time ({error!r}). "
                "Check that it is running and not overloaded, or raise the timeout."
            ) from error
        except httpx.TransportError as error:
            raise BackendError(
                f"Cannot reach the chat server at {self.url}: {error}. Start the server or fix --base-url."
            ) from error

    def _complete(self, body: dict[str, Any], started: float) -> Generation:
        response = self._client.post(self.url, json=body)
        self._raise_for_status(response)
        payload = _json(response, self.url)
        try:
            choice = payload["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise BackendError(
                f"The chat server at {self.url} answered without choices[0].message: "
                f"{str(payload)[:200]}"
            ) from error
        total = time.perf_counter() - started
        return _generation(text, payload.get("usage"), None, total, choice.get("finish_reason"))

    def _stream(
        self, body: dict[str, Any], on_token: Callable[[str], None], started: float
    ) -> Generation:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        pieces: list[str] = []
        usage: dict[str, Any] | None = None
        finish_reason = None
        first_token_at: float | None = None
        with self._client.stream("POST", self.url, json=body) as response:
            if response.status_code >= 400:
                response.read()
                self._raise_for_status(response)
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments, `event:` lines
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except json.JSONDecodeError as error:
                    raise BackendError(
                        f"The chat server at {self.url} sent an event that is not JSON: {data[:200]}"
                    ) from error
                if event.get("error"):
                    raise BackendError(f"The chat server at {self.url} failed: {event['error']}")
                usage = event.get("usage") or usage
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        pieces.append(piece)
                        on_token(piece)
                    finish_reason = choice.get("finish_reason") or finish_reason
        total = time.perf_counter() - started
        ttft = None if first_token_at is None else first_token_at - started
        return _generation("".join(pieces), usage, ttft, total, finish_reason)

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        detail = response.text[:300].strip()
        hint = " Check --api-key." if response.status_code in (401, 403) else ""
        if response.status_code == 404:
            hint = " Is this an OpenAI-compatible server, and is the model name right?"
        raise BackendError(
            f"The chat server at {self.url} answered HTTP {response.status_code}: {detail}.{hint}"
        )


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
