"""`infuse serve`: the assistant over HTTP (OpenAI-compatible API at /v1, MCP at /mcp), or MCP alone.

    infuse serve [--kb DIR] [--runs DIR] [--profile FILE] [--host H] [--port P] [--token-file F]
    infuse serve mcp [--transport stdio|http] ...
    infuse serve api ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from infuse.cli.options import option_group
from infuse.errors import ConfigError
from infuse.models import DEFAULT_MODEL

MB = 1024 * 1024


# The options every serve mode shares.
serve_options = option_group(
    click.option("--kb", default=None, envvar="INFUSE_KB",
                 help="Knowledge base folder or postgresql:// URL (env INFUSE_KB; default .infuse/kb when it exists)."),
    click.option("--runs", type=click.Path(path_type=Path), default=None,
                 help="Folder of training runs: each finished run is served as infuse-lora:<run>."),
    click.option("--profile", type=click.Path(path_type=Path), default=None,
                 help="Assistant profile written by `infuse eval` (enables infuse-auto)."),
    click.option("--cag-cache", type=click.Path(path_type=Path), default=None,
                 help="A CAG cache folder built with `infuse cag build` (infuse-cag)."),
    click.option("--model", default=DEFAULT_MODEL, show_default=True,
                 help="Base model: packaged name, folder, .gguf, or the served name with --base-url."),
    click.option("--base-url", default=None, help="Generate with an OpenAI-compatible server instead."),
    click.option("--api-key", default=None, envvar="INFUSE_API_KEY", help="Key for --base-url."),
    click.option("--methods", default=None,
                 help="Comma-separated methods to serve (rag,cag,base,lora,lora+rag). Default: all that can run."),
    click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on."),
    click.option("--port", type=int, default=8000, show_default=True),
    click.option("--token-file", type=click.Path(path_type=Path), default=None,
                 help="File holding the bearer token clients must send (required off loopback)."),
    click.option("--allowed-host", "allowed_hosts", multiple=True,
                 help="Extra Host header value to accept (behind a proxy), e.g. assistant.example.com."),
    click.option("--allow-root", "allowed_roots", multiple=True, type=click.Path(path_type=Path),
                 help="Folder clients may add files from (repeatable). None: adding files is off."),
    click.option("--read-only", is_flag=True, help="Hide the tools that change the knowledge base."),
    click.option("--allow-private", is_flag=True,
                 help="Let clients add web pages from loopback/private addresses (your intranet)."),
    click.option("--persona", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                 help="File holding the assistant's system prompt (its voice)."),
    click.option("--max-new-tokens", type=int, default=256, show_default=True),
    click.option("--no-grounding", is_flag=True,
                 help="RAG and CAG stream the model's answer as it comes, without the grounding "
                      "check and evidence declines (for strong models you trust)."),
    click.option("--search", default=None,
                 help="The research tool's web search: searxng:URL, brave, tavily, exa (default: kb only)."),
    click.option("--queue-size", type=int, default=8, show_default=True,
                 help="Requests that may wait per model; more get 429."),
    click.option("--max-file-mb", type=float, default=20, show_default=True),
    click.option("--max-request-mb", type=float, default=50, show_default=True),
    click.option("--max-total-mb", type=float, default=500, show_default=True),
)


def settings_from(options: dict) -> ServeSettings:  # noqa: F821 - imported lazily below
    """Flags -> validated ServeSettings."""
    from infuse.serve.settings import ServeSettings, read_token_file

    kb = options["kb"]
    if kb is None and Path(".infuse/kb").is_dir():
        kb = ".infuse/kb"
    token = read_token_file(options["token_file"]) if options["token_file"] else None
    persona = options["persona"].read_text(encoding="utf-8").strip() if options["persona"] else None
    methods = [name.strip() for name in options["methods"].split(",") if name.strip()] if options["methods"] else None
    known = {"rag", "cag", "base", "lora", "lora+rag"}
    for name in methods or []:
        if name not in known:
            raise ConfigError(f"--methods {name!r} is not one of {', '.join(sorted(known))}.")
    as_given = ("runs", "profile", "cag_cache", "model", "base_url", "api_key", "host", "port",
                "read_only", "allow_private", "max_new_tokens", "queue_size")
    return ServeSettings(
        **{name: options[name] for name in as_given},
        kb=kb,
        token=token,
        allowed_hosts=list(options["allowed_hosts"]),
        allowed_roots=list(options["allowed_roots"]),
        persona=persona,
        grounded=not options["no_grounding"],
        methods=methods,
        search=_search_spec(options.get("search")),
        max_file_bytes=int(options["max_file_mb"] * MB),
        max_request_bytes=int(options["max_request_mb"] * MB),
        max_total_bytes=int(options["max_total_mb"] * MB),
    ).validate()


def _search_spec(spec: str | None) -> str | None:
    """--search checked now (a missing API key is named before anything loads)."""
    if spec is None or spec == "none":
        return None
    from infuse.research.websearch import web_search

    web_search(spec)
    return spec


def _library(settings):
    from infuse.serve.library import Library, open_knowledge_base

    if settings.kb is None:
        return None
    return Library(open_knowledge_base(settings.kb), settings.guard())


def _announce(settings, parts: str) -> None:
    where = f"http://{settings.host}:{settings.port}"
    click.echo(f"infuse serve: {parts} on {where} (Ctrl+C stops)", err=True)


@click.group(invoke_without_command=True)
@serve_options
@click.pass_context
def serve(ctx: click.Context, **options) -> None:
    """Serve the assistant: OpenAI-compatible API at /v1 and MCP at /mcp, in one process."""
    if ctx.invoked_subcommand is not None:
        return
    from infuse.serve.app import run_http
    from infuse.serve.assistant import Assistant

    settings = settings_from(options)
    library = _library(settings)
    _announce(settings, "API at /v1, MCP at /mcp" if library else "API at /v1 (no --kb: no MCP)")
    run_http(settings, library, Assistant(settings, library), mcp=library is not None)


@serve.command("api")
@serve_options
def serve_api(**options) -> None:
    """Serve only the OpenAI-compatible API (/v1)."""
    from infuse.serve.app import run_http
    from infuse.serve.assistant import Assistant

    settings = settings_from(options)
    library = _library(settings)
    _announce(settings, "API at /v1")
    run_http(settings, library, Assistant(settings, library), mcp=False)


@serve.command("mcp")
@serve_options
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True,
              help="stdio for a client that starts this command; http for Streamable HTTP at /mcp.")
@click.option("--no-assistant", is_flag=True, help="Serve the knowledge tools only; load no model (no `ask`).")
def serve_mcp(transport: str, no_assistant: bool, **options) -> None:
    """Serve only MCP: over stdio (default) or Streamable HTTP at /mcp."""
    from infuse.serve.assistant import Assistant

    settings = settings_from(options)
    library = _library(settings)
    if library is None:
        raise ConfigError("MCP serves a knowledge base: pass --kb DIR (build one with `infuse kb add`).")
    assistant = None if no_assistant else Assistant(settings, library)
    if transport == "http":
        from infuse.serve.app import run_http

        _announce(settings, "MCP at /mcp")
        run_http(settings, library, assistant, api=False, web=False)
        return
    import anyio

    from infuse.serve.mcp_server import build_mcp_server

    server = build_mcp_server(library, assistant, read_only=settings.read_only)
    try:
        anyio.run(server.run_stdio_async)
    finally:
        if assistant is not None:
            assistant.close()
    sys.stdout.flush()
