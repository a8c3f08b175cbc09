"""One ASGI app for `infuse serve`: the OpenAI-compatible API at `/v1`, MCP (Streamable HTTP) at
`/mcp`, `/health` and `/ready`; the web page at `/` with its JSON API at `/api` (`infuse.serve.web`).

    build_app(settings, library, assistant) -> Starlette
    run_http(settings, library, assistant)  serve it with uvicorn until interrupted

`/health` answers as soon as the process listens; `/ready` says 503 until the models are loaded
(and names what is loading), then 200 with the models served.
"""

from __future__ import annotations

import contextlib
from typing import Any

from infuse.serve.library import Library
from infuse.serve.settings import ServeSettings


def build_app(
    settings: ServeSettings,
    library: Library | None,
    assistant: Any = None,
    *,
    api: bool = True,
    mcp: bool = True,
    web: bool = True,
):
    """The Starlette app serving the parts asked for, behind the bearer token when one is set."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    routes: list[Any] = []
    lifespans: list[Any] = []

    async def health(_request):
        return JSONResponse({"status": "ok"})

    async def ready(_request):
        if assistant is None:
            return JSONResponse({"status": "ready", "models": []})
        state = assistant.state()
        return JSONResponse(state, status_code=200 if state["status"] == "ready" else 503)

    routes += [Route("/health", health), Route("/ready", ready)]
    if mcp:
        if library is None:
            raise ValueError("MCP needs a knowledge base (--kb).")
        from infuse.serve.mcp_server import build_mcp_server

        server = build_mcp_server(library, assistant, read_only=settings.read_only)
        mcp_app = server.streamable_http_app(
            streamable_http_path="/mcp",
            transport_security=settings.transport_security(),
            max_request_body_size=settings.max_request_bytes,
            host=settings.host,
        )
        routes += list(mcp_app.routes)
        lifespans.append(mcp_app.router.lifespan_context)
    if api and assistant is not None:
        from infuse.serve.openai_api import api_routes

        routes += api_routes(assistant, library)
    if web:
        from infuse.serve.web import web_routes

        routes += web_routes(settings, library, assistant)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with contextlib.AsyncExitStack() as stack:
            for context in lifespans:
                await stack.enter_async_context(context(app))
            if assistant is not None:
                assistant.start()
            try:
                yield
            finally:
                if assistant is not None:
                    assistant.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    if settings.token:
        from infuse.serve.auth import BearerTokenMiddleware

        return BearerTokenMiddleware(app, settings.token)
    return app


def run_http(settings: ServeSettings, library: Library | None, assistant: Any = None, **parts: bool) -> None:
    """Serve until interrupted (uvicorn; its access log to stderr at warning level)."""
    import uvicorn

    asgi = build_app(settings, library, assistant, **parts)
    config = uvicorn.Config(
        asgi,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    uvicorn.Server(config).run()
