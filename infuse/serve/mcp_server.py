"""The MCP server (official SDK, `MCPServer`): the knowledge base and the assistant as tools.

Tools, each with a typed result (so the SDK publishes an output schema and structured content):

    search(query, k)            ranked chunks with source and score
    ask(question, method)       an answer with numbered citations, the method that answered, timings
    list_sources()              every document with its chunk count
    add(paths)                  files or folders under the allowed roots      (not with --read-only)
    remove(targets)             documents by path or id                        (not with --read-only)
    research(question, ...)     a Markdown report from the knowledge base (and the web with
                                --search), citations checked against the sources read
    eval_summary()              the current verdict (the profile `infuse eval` wrote)

Resources: each document as `infuse://doc/{key}` (JSON: text and metadata). Errors reach the
client as tool errors carrying infuse's one-line message.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Literal

from infuse.errors import InfuseError
from infuse.knowledge.kb import IngestReport
from infuse.serve.library import Library
from infuse.serve.schemas import (
    AskResult,
    EvalSummary,
    RemoveResult,
    ResearchResult,
    SearchResult,
    SourceList,
    doc_uri,
)

SERVER_NAME = "infuse"
INSTRUCTIONS = (
    "infuse serves a knowledge base and an assistant over it. Use `search` to find passages, "
    "`ask` for an answer with numbered citations, `list_sources` to see what is known, and "
    "read `infuse://doc/{id}` for a whole document."
)
WRITE_TOOLS = ("add", "remove")


def _tool_error(error: Exception):
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(str(error))


def build_mcp_server(library: Library, assistant: Any = None, *, read_only: bool = False):
    """An `MCPServer` over `library` (and `assistant` for `ask`/`eval_summary`, when given)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    class InfuseMCPServer(MCPServer):
        async def list_resources(self):  # every document is a resource, listed live
            import anyio

            listed = await super().list_resources()
            sources = await anyio.to_thread.run_sync(library.sources)
            from mcp.types import Resource as MCPResource

            for source in sources.sources:
                listed.append(
                    MCPResource(
                        uri=source.uri,
                        name=source.title or source.source,
                        description=f"{source.source} ({source.chunk_count} chunks)",
                        mime_type="application/json",
                    )
                )
            return listed

    @contextlib.asynccontextmanager
    async def lifespan(_server):
        # Runs once the transport holds stdout (stdio), so loading never writes to the protocol.
        if assistant is not None:
            assistant.start()
        yield {}

    server = InfuseMCPServer(
        SERVER_NAME, instructions=INSTRUCTIONS, log_level="WARNING", lifespan=lifespan
    )
    read = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=read)
    def search(query: str, k: int = 5) -> SearchResult:
        """Search the knowledge base: the k best chunks for the query (hybrid dense + BM25), best
        first, each with its source, score and the resource URI of its document."""
        try:
            return library.search(query, k)
        except (InfuseError, ValueError) as error:
            raise _tool_error(error) from error

    @server.tool(annotations=read)
    def list_sources() -> SourceList:
        """Every document in the knowledge base, with its source, chunk count and resource URI."""
        try:
            return library.sources()
        except InfuseError as error:
            raise _tool_error(error) from error

    @server.tool(annotations=read)
    def ask(
        question: str, method: Literal["auto", "rag", "cag"] = "auto", max_new_tokens: int = 256
    ) -> AskResult:
        """Answer a question from the knowledge: `rag` retrieves passages, `cag` reads the whole
        knowledge from its cache, `auto` uses the method the last eval found best and falls back
        once when it declines. Returns the answer, numbered citations and the method that answered."""
        if assistant is None:
            raise _tool_error(RuntimeError("This server has no assistant loaded; only search works."))
        try:
            return assistant.ask_result(question, method, max_new_tokens=max_new_tokens)
        except (InfuseError, KeyError, ValueError) as error:
            raise _tool_error(error) from error

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
    def research(question: str, depth: int = 1, breadth: int = 2, max_pages: int = 3) -> ResearchResult:
        """Research a question: the knowledge base first, then web pages when the server has a
        search backend; plans sub-questions, notes findings and writes a Markdown report with
        numbered citations. Citations to anything not read are removed (`dropped_citations`);
        `no_answer` is true when the sources read do not answer it. Slower than `ask`."""
        if assistant is None:
            raise _tool_error(RuntimeError("This server has no assistant loaded; only search works."))
        try:
            return assistant.research_result(question, depth=depth, breadth=breadth, max_pages=max_pages)
        except (InfuseError, KeyError, ValueError) as error:
            raise _tool_error(error) from error

    @server.tool(annotations=read)
    def eval_summary() -> EvalSummary:
        """The current verdict: methods measured, their scores with 95% intervals, the winner that
        `auto` serves, and which methods cannot be told apart on the questions asked."""
        if assistant is None:
            return EvalSummary(available=False, message="No assistant is loaded on this server.")
        return assistant.eval_summary()

    if not read_only:

        @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=False))
        def add(paths: list[str]) -> IngestReport:
            """Add files or folders to the knowledge base. Paths must lie under the server's
            allowed roots (relative paths are taken from the first root); sizes are limited."""
            try:
                return library.add(paths)
            except InfuseError as error:
                raise _tool_error(error) from error

        @server.tool(annotations=ToolAnnotations(destructive_hint=True, open_world_hint=False))
        def remove(targets: list[str]) -> RemoveResult:
            """Remove documents by source path, document id, or the id in `infuse://doc/{id}`."""
            try:
                return library.remove(targets)
            except InfuseError as error:
                raise _tool_error(error) from error

    def read_document(key: str) -> str:
        try:
            record, text = library.document_text(key)
        except KeyError:
            from mcp.server.mcpserver.exceptions import ResourceError

            raise ResourceError(f"No document {key!r} in the knowledge base.") from None
        return json.dumps(
            {
                "uri": doc_uri(record.doc_id),
                "doc_id": record.doc_id,
                "source": record.source,
                "title": record.title,
                "chunk_count": record.chunk_count,
                "metadata": record.metadata,
                "text": text,
            },
            ensure_ascii=False,
        )

    server.resource(
        "infuse://doc/{key}",
        name="document",
        description="A document of the knowledge base: its text (chunks joined) and metadata.",
        mime_type="application/json",
    )(read_document)
    return server
