"""The OpenAI-compatible API (`/v1`), so chat UIs (open-webui, LibreChat, IDEs) talk to infuse.

    GET  /v1/models              one model per method (see `infuse.serve.assistant`)
    POST /v1/chat/completions    streaming (SSE ending `data: [DONE]`) and not

Beyond the OpenAI shape, and ignored by clients that do not know them:

- `citations`: top-level list of `{index, source, doc_id, chunk_id, snippet, score,
  attributed}`; `[index]` in the answer refers to it. In a stream it rides on the last chunk
  that has a `finish_reason`.
- `infuse`: `{method, requested_model, no_answer, fallback_from, timings}` - which method
  answered (infuse-auto names the one it used).
- `usage.prompt_tokens_details.cached_tokens`: knowledge tokens served from CAG's cache (or
  what the generation server reported).

Errors use OpenAI's `{"error": {"message", "type", "code"}}`: 404 unknown model, 400 bad
request, 429 (with `Retry-After`) when the model's queue is full, 503 (with `Retry-After`)
while the models load.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from infuse.errors import InfuseError
from infuse.serve.schemas import citation_models
from infuse.serve.workers import JobCancelled, QueueFullError, is_done

LOADING_RETRY_AFTER_S = 5


def error_response(status: int, message: str, kind: str, code: str | None = None, headers=None):
    from starlette.responses import JSONResponse

    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": code, "param": None}},
        status_code=status,
        headers=headers,
    )


def _not_ready(assistant):
    if assistant.status == "loading":
        return error_response(
            503, "The models are still loading; try again in a few seconds.", "service_unavailable",
            "loading", headers={"Retry-After": str(LOADING_RETRY_AFTER_S)},
        )
    return error_response(
        503, f"The models failed to load: {assistant.error}", "service_unavailable", "load_failed"
    )


def message_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    raise ValueError("message content must be a string or a list of content parts")


def parse_chat_request(body: Any) -> dict[str, Any]:
    """Validate a chat-completions body; ValueError with a message naming the bad field."""
    if not isinstance(body, dict):
        raise ValueError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("`model` is required: one of the ids from GET /v1/models.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("`messages` must be a non-empty list of {role, content}.")
    turns = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise ValueError(f"messages[{index}] needs a role of system, user or assistant.")
        role = "system" if message["role"] == "developer" else message["role"]
        turns.append({"role": role, "content": message_text(message.get("content"))})
    if turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise ValueError("The last message must be a user message with the question.")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ValueError("`max_tokens` must be a positive integer.")
    options = body.get("stream_options") or {}
    return {
        "model": model,
        "question": turns[-1]["content"],
        "history": [turn for turn in turns[:-1] if turn["role"] in ("system", "user", "assistant")],
        "stream": bool(body.get("stream", False)),
        "include_usage": bool(isinstance(options, dict) and options.get("include_usage")),
        "max_tokens": max_tokens,
    }


def usage_of(answer: Any) -> dict[str, Any]:
    """OpenAI usage from an Answer's facts (CAG's knowledge tokens count as cached)."""
    facts = answer.facts or {}
    knowledge = int(facts.get("knowledge_tokens") or 0)
    question = int(facts.get("question_tokens") or 0)
    prompt = int(facts.get("prompt_tokens") or (knowledge + question))
    completion = int(facts.get("completion_tokens") or facts.get("answer_tokens") or 0)
    cached = facts.get("cached_tokens")
    if cached is None:
        cached = knowledge if facts.get("cache_used", knowledge > 0) else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(cached)},
    }


def infuse_info(answer: Any, model_id: str) -> dict[str, Any]:
    """Which method answered, and how."""
    facts = answer.facts or {}
    return {
        "method": answer.method,
        "requested_model": model_id,
        "no_answer": bool(answer.no_answer),
        "fallback_from": facts.get("fallback_from"),
        "timings": dict(answer.timings),
        "retrieval_query": facts.get("retrieval_query"),
        # every passage retrieval gave the model (RAG), cited or not
        "passages": [
            {"number": item.get("number"), "source": item.get("source"), "score": item.get("score"),
             "doc_id": item.get("doc_id"), "chunk_id": item.get("chunk_id")}
            for item in facts.get("passages", [])
        ],
    }


def api_routes(assistant, library=None) -> list[Any]:
    """The `/v1` routes over `assistant`."""
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def models(_request):
        if assistant.status != "ready":
            return _not_ready(assistant)
        return JSONResponse(
            {"object": "list", "data": [served.card() for served in assistant.models.values()]}
        )

    async def chat_completions(request):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error_response(400, "The request body is not valid JSON.", "invalid_request_error")
        try:
            parsed = parse_chat_request(body)
        except ValueError as error:
            return error_response(400, str(error), "invalid_request_error")
        if assistant.status != "ready":
            return _not_ready(assistant)
        try:
            served = assistant.resolve(parsed["model"])
        except KeyError as error:
            return error_response(404, str(error.args[0]), "invalid_request_error", "model_not_found")
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()

        def listener(item: Any) -> None:
            loop.call_soon_threadsafe(items.put_nowait, item)

        try:
            job = assistant.submit(
                served.id, parsed["question"], history=parsed["history"],
                max_new_tokens=parsed["max_tokens"], listener=listener,
            )
        except QueueFullError as error:
            return error_response(
                429, str(error), "rate_limit_error", "queue_full",
                headers={"Retry-After": str(error.retry_after_s)},
            )
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if parsed["stream"]:
            stream = _stream(job, items, served.id, completion_id, created, parsed["include_usage"])
            return StreamingResponse(stream, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await _complete(request, job, items, served.id, completion_id, created)

    return [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]


def _failure(error: BaseException):
    if isinstance(error, InfuseError):
        return error_response(400, str(error), "invalid_request_error", type(error).__name__)
    return error_response(500, f"Generation failed: {type(error).__name__}: {error}", "server_error")


async def _complete(request, job, items: asyncio.Queue, model_id: str, completion_id: str, created: int):
    """Wait for the whole answer; a client that disconnects cancels its job."""
    from starlette.responses import JSONResponse

    while True:
        try:
            item = await asyncio.wait_for(items.get(), timeout=0.5)
        except TimeoutError:
            if await request.is_disconnected():
                job.cancel()
                return JSONResponse({"error": {"message": "client disconnected"}}, status_code=499)
            continue
        if is_done(item):
            break
    if job.error is not None:
        return _failure(job.error)
    answer = job.result
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model_id,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage_of(answer),
            "citations": [citation.model_dump() for citation in citation_models(answer)],
            "infuse": infuse_info(answer, model_id),
        }
    )


def _chunk(completion_id: str, created: int, model_id: str, delta: dict, finish: str | None = None,
           **extra: Any) -> str:
    payload = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model_id,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _stream(job, items: asyncio.Queue, model_id: str, completion_id: str, created: int,
                  include_usage: bool):
    """SSE chunks: the role, the text as it is generated, a last chunk with `finish_reason`,
    citations and the method, the usage chunk when asked, then `data: [DONE]`.

    When the client goes away, Starlette cancels this generator and `finally` cancels the job.
    """
    usage_extra = {"usage": None} if include_usage else {}
    try:
        yield _chunk(completion_id, created, model_id, {"role": "assistant", "content": ""}, **usage_extra)
        sent = False
        while True:
            item = await items.get()
            if is_done(item):
                break
            sent = True
            yield _chunk(completion_id, created, model_id, {"content": item}, **usage_extra)
        if job.error is not None:
            if isinstance(job.error, JobCancelled):
                return
            message = str(job.error) if isinstance(job.error, InfuseError) else (
                f"Generation failed: {type(job.error).__name__}: {job.error}")
            yield f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n"
            yield "data: [DONE]\n\n"
            return
        answer = job.result
        if not sent and answer.text:
            yield _chunk(completion_id, created, model_id, {"content": answer.text}, **usage_extra)
        yield _chunk(
            completion_id, created, model_id, {}, "stop",
            citations=[citation.model_dump() for citation in citation_models(answer)],
            infuse=infuse_info(answer, model_id),
            **usage_extra,
        )
        if include_usage:
            payload = {
                "id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": model_id, "choices": [], "usage": usage_of(answer),
            }
            yield f"data: {json.dumps(payload)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        if not job.finished.is_set():
            job.cancel()
