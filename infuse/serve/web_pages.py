"""Adding web pages to the served knowledge base: one URL, or a small crawl from it.

Every request goes through the crawler's own fetcher (`infuse.scrape`): robots.txt obeyed, a
delay between two requests to one host, the private-network guard checked on the resolved
address at every redirect, bodies bounded after decompression, timeouts per request. The
server adds its own bounds: at most MAX_PAGES pages, an overall deadline, one crawl at a time,
and loopback/private addresses only when it was started with `--allow-private`.

The pages become documents whose source is their URL (with the crawl's settings in their
reader options), so `infuse kb sync` keeps them current like any crawled page.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from infuse.errors import InfuseError

MAX_PAGES = 20
MAX_PAGE_BYTES = 5 * 1024 * 1024
READ_TIMEOUT_S = 15.0
PAGE_TIMEOUT_S = 30.0
DEADLINE_S = 90.0  # the crawl stops taking new pages after this (a page in flight finishes)
LINK_DEPTH = 2  # how far a crawl of more than one page follows links


class UrlAddError(InfuseError):
    """A URL that could not be added; `status` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _TimeUp(KeyboardInterrupt):
    """Stops the crawl the way Ctrl-C does: the pages fetched so far are kept."""


@dataclass
class UrlAddResult:
    """What adding a URL did: every page met, the knowledge base's ingest counts, the documents."""

    url: str
    pages: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    chunks_written: int = 0
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_url(url: str) -> str:
    """The URL stripped, or UrlAddError(400) saying what is wrong with it."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlAddError(
            f"{url or 'An empty URL'} is not a web address: give one starting with http:// or https://.",
            400,
        )
    return url


def add_url(
    library: Any,
    url: str,
    *,
    max_pages: int = 1,
    allow_private: bool = False,
    max_bytes: int = MAX_PAGE_BYTES,
    deadline_s: float = DEADLINE_S,
    busy: threading.Lock | None = None,
) -> UrlAddResult:
    """Fetch `url` (and, with `max_pages` > 1, pages it links to on the same host) and add the
    pages to `library`'s knowledge base. Raises UrlAddError with the reason in words when no
    page could be added (refused address, unreachable, not a web page, no text). `busy`, held
    while crawling, lets a server run one crawl at a time (a second caller is told to wait)."""
    from infuse.scrape.crawl import CrawlConfig, crawl
    from infuse.scrape.fetch import FetchConfig

    url = check_url(url)
    if not 1 <= max_pages <= MAX_PAGES:
        raise UrlAddError(f"Pages must be between 1 and {MAX_PAGES}, not {max_pages}.", 400)
    config = CrawlConfig(
        max_pages=max_pages,
        max_depth=0 if max_pages == 1 else LINK_DEPTH,
        scope="host",
        sitemaps=max_pages > 1,
        render="never",
        fetch=FetchConfig(
            max_bytes=max_bytes,
            read_timeout=READ_TIMEOUT_S,
            total_timeout=PAGE_TIMEOUT_S,
            max_retries=1,
            max_retry_after=10.0,
            allow_private=allow_private,
        ),
    )
    stop_at = time.monotonic() + deadline_s

    def on_progress(_done: int, _total: int, **_info: Any) -> None:
        if time.monotonic() > stop_at:
            raise _TimeUp()

    busy = busy or threading.Lock()
    if not busy.acquire(blocking=False):
        raise UrlAddError("Another web page is being added; try again when it has finished.", 429)
    try:
        result = crawl([url], config, on_progress=on_progress)
        documents = result.documents
        if not documents:
            raise _failure(url, result.pages, allow_private)
        added = _iso_now()
        for document in documents:
            # reader_options are stored with the document but not hashed: a later sync that
            # finds the same text leaves the document as it is.
            document.reader_options["added"] = added
        report = library.add_documents(documents)
    finally:
        busy.release()
    from infuse.serve.schemas import doc_key

    return UrlAddResult(
        url=url,
        pages=[page.to_dict() for page in result.pages],
        documents=[
            {"key": doc_key(document.doc_id), "doc_id": document.doc_id, "source": document.source,
             "title": document.title}
            for document in documents
        ],
        added=list(report.added),
        updated=list(report.updated),
        unchanged=list(report.unchanged),
        chunks_written=report.chunks_written,
        stopped_early=result.interrupted,
    )


def sync_pages(library: Any, *, allow_private: bool = False, busy: threading.Lock | None = None) -> dict[str, Any]:
    """`infuse kb sync` for the served knowledge base: web pages asked again conditionally
    (ETag / Last-Modified) through the crawler's refresher, files re-read; the ingest report.

    Each page is fetched with the settings of the crawl that found it; a page crawled with
    `--allow-private` (the knowledge base's owner opted in for that site) keeps that permission,
    any other reaches private addresses only when this server allows them.
    """
    from infuse.knowledge.sources import SyncRefusedError
    from infuse.scrape.fetch import FetchConfig
    from infuse.scrape.refresh import UrlRefresher

    refresher = UrlRefresher(FetchConfig(
        max_bytes=MAX_PAGE_BYTES, read_timeout=READ_TIMEOUT_S, total_timeout=PAGE_TIMEOUT_S,
        max_retries=1, max_retry_after=10.0, allow_private=allow_private,
    ))
    busy = busy or threading.Lock()
    if not busy.acquire(blocking=False):
        raise UrlAddError("Web pages are being fetched already; try again when that has finished.", 429)
    try:
        report = library.sync([refresher])
    except SyncRefusedError as error:
        raise UrlAddError(str(error), 409) from error
    finally:
        busy.release()
    return report.to_dict()


def _failure(url: str, pages: list[Any], allow_private: bool) -> UrlAddError:
    """Why nothing was added, from the start page's result."""
    first = next((page for page in pages if page.url == url), pages[0] if pages else None)
    if first is None:
        return UrlAddError(f"Nothing was fetched from {url}.", 502)
    reason = first.reason or f"HTTP {first.status}"
    if reason.startswith(("cannot connect", "timed out")):
        return UrlAddError(f"Could not reach {url}: {reason}.", 502)
    if "address; refused" in reason:
        hint = "" if allow_private else (
            " This server fetches public addresses only; start it with `infuse serve --allow-private`"
            " to add pages from your own network."
        )
        return UrlAddError(f"Refused {url}: {reason.split('; refused')[0]}, not a public one.{hint}", 403)
    if "content type" in reason or "binary content" in reason:
        return UrlAddError(f"{url} is not a web page: {reason}.", 415)
    if "robots.txt" in reason:
        return UrlAddError(f"Not added: {reason}.", 403)
    if first.state == "gone":
        return UrlAddError(f"{url} answered {reason}: there is no page there.", 404)
    if first.state == "empty":
        return UrlAddError(f"{url} holds no text to add ({reason}).", 422)
    return UrlAddError(f"Could not add {url}: {reason}.", 502)


def _iso_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
