"""Serving the assistant: the OpenAI-compatible API (`/v1`), the MCP server (`/mcp` or stdio),
`/health` and `/ready`, in one process (`infuse serve`).

    settings.py      ServeSettings: flags validated once (no public bind without a token)
    library.py       Library: the knowledge base as the servers use it (search, add, remove, read)
    guard.py         AddGuard: which files a client may add (allowed roots, size limits)
    assistant.py     Assistant: the served methods, one model id each, loaded in the background
    workers.py       one generation worker per loaded model, with a bounded queue
    freshness.py     CAG rebuilt when the knowledge base changes
    openai_api.py    /v1/models, /v1/chat/completions
    mcp_server.py    the MCP tools and resources (official SDK)
    web.py           the web page at `/` and its `/api` JSON routes (static/ holds the page)
    web_pages.py     add_url: a web page (or a small crawl) into the knowledge base, via infuse.scrape
    auth.py          bearer token, compared in constant time
    app.py           the ASGI app and uvicorn
"""

from __future__ import annotations

from infuse.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "build_app": "infuse.serve.app",
    "run_http": "infuse.serve.app",
    "ServeSettings": "infuse.serve.settings",
})
