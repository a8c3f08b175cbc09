"""`crawl()`: breadth-first through a site, politely, into `Document`s whose source is their URL.

Every page visited is a `PageResult` (url, HTTP status, what happened, why it was skipped),
so nothing is dropped silently: out-of-scope links, pages past `max_depth`, robots.txt
refusals, oversized bodies and binaries all appear with their reason.

Stop and resume: the frontier, the seen set and the page results are saved (atomically) to
`state_path` after every batch of documents is handed to `on_documents`; Ctrl-C hands over
the pending batch, saves, and returns with `interrupted=True`. Running the same crawl with
the same `state_path` continues where it stopped; a finished crawl deletes its state.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError
from infuse.files import write_text_atomic
from infuse.knowledge.documents import Document
from infuse.scrape.content import page_documents
from infuse.scrape.fetch import FetchConfig, Fetcher, FetchResult
from infuse.scrape.scope import Scope, canonical_url

RENDER_MODES = ("auto", "always", "never")
AUTO_RENDER_BELOW_CHARS = 200  # "almost no text": fewer visible characters than this


@dataclass
class CrawlConfig:
    """What to crawl and how far. `fetch` holds the politeness and safety limits."""

    max_pages: int = 100
    max_depth: int = 3
    scope: str = "host"
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    sitemaps: bool = True
    render: str = "never"
    batch_size: int = 16
    fetch: FetchConfig = field(default_factory=FetchConfig)

    def __post_init__(self) -> None:
        if self.render not in RENDER_MODES:
            raise ConfigError(
                f"--render {self.render!r}: expected one of {', '.join(RENDER_MODES)}."
            )
        if self.max_pages < 1 or self.max_depth < 0:
            raise ConfigError("--max-pages must be at least 1 and --depth at least 0.")

    def spec(self, start_urls: list[str]) -> dict[str, Any]:
        """What a later `sync` needs to crawl the same way (kept in each document's reader_options)."""
        return {
            "start_urls": list(start_urls),
            "max_pages": self.max_pages,
            "max_depth": self.max_depth,
            "scope": self.scope,
            "include": list(self.include),
            "exclude": list(self.exclude),
            "render": self.render,
            "allow_private": self.fetch.allow_private,
            "allow_networks": list(self.fetch.allow_networks),
            "delay": self.fetch.min_delay,
        }


@dataclass
class PageResult:
    """One URL the crawl met. `state`: added (documents made), same (304), empty (no text),
    skipped (with `reason`), gone (404/410)."""

    url: str
    state: str
    status: int | None = None
    reason: str | None = None
    depth: int = 0
    final_url: str | None = None
    title: str = ""
    chars: int = 0
    rendered: bool = False

    def to_dict(self) -> dict[str, Any]:
        always = ("url", "state", "status", "reason")
        return {
            key: value
            for key, value in asdict(self).items()
            if key in always or value not in (None, "", False)
        }


@dataclass
class CrawlResult:
    """All pages met, and the documents made (when no `on_documents` sink took them)."""

    pages: list[PageResult] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    interrupted: bool = False
    requests: int = 0

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for page in self.pages:
            counts[page.state] = counts.get(page.state, 0) + 1
        counts["pages"] = len(self.pages)
        counts["requests"] = self.requests
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "pages": [page.to_dict() for page in self.pages],
            "counts": self.counts,
            "interrupted": self.interrupted,
        }


class _Frontier:
    """URLs waiting (breadth-first), what was already queued, and what was visited."""

    def __init__(self) -> None:
        self.queue: deque[tuple[str, int]] = deque()
        self.seen: set[str] = set()

    def push(self, url: str, depth: int) -> bool:
        key = canonical_url(url)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.queue.append((url, depth))
        return True


def crawl(
    start_urls: list[str] | str,
    config: CrawlConfig | None = None,
    *,
    fetcher: Fetcher | None = None,
    known: dict[str, dict[str, str]] | None = None,
    state_path: str | Path | None = None,
    on_documents: Callable[[list[Document]], None] | None = None,
    on_progress: Callable[..., None] | None = None,
) -> CrawlResult:
    """Crawl from `start_urls` within the scope; return every page met (and the documents).

    `known` maps URLs to their stored validators ({"etag", "last_modified"}): those pages are
    fetched conditionally and queued from the start (sync). `on_documents` receives documents
    in batches as they are made (then `result.documents` stays empty); `on_progress(done,
    total, url=..., state=...)` is called after every page.
    """
    config = config or CrawlConfig()
    starts = [start_urls] if isinstance(start_urls, str) else list(start_urls)
    scope = Scope(starts, mode=config.scope, include=config.include, exclude=config.exclude)
    spec = config.spec(starts)
    own_fetcher = fetcher is None
    fetcher = fetcher or Fetcher(config.fetch)
    result = CrawlResult()
    frontier = _Frontier()
    state_file = Path(state_path) if state_path else None
    if state_file and state_file.is_file():
        _restore(state_file, spec, frontier, result)
    else:
        for url in starts:
            frontier.push(url, 0)
        for url in known or {}:
            frontier.push(url, 1)
    known_by_key = {canonical_url(url): validators for url, validators in (known or {}).items()}
    renderer = None
    pending: list[Document] = []
    visited = sum(1 for page in result.pages if page.state != "skipped" or page.status)

    def deliver() -> None:
        if on_documents is not None and pending:
            on_documents(list(pending))
        elif pending:
            result.documents.extend(pending)
        pending.clear()
        if state_file:
            _save(state_file, spec, frontier, result)

    try:
        if config.sitemaps and not result.pages:
            for url in _sitemap_urls(fetcher, starts):
                if not scope.reason_out(url) and config.max_depth >= 1:
                    frontier.push(url, 1)
        while frontier.queue and visited < config.max_pages:
            url, depth = frontier.queue[0]
            out = scope.reason_out(url)
            if out:
                frontier.queue.popleft()
                result.pages.append(
                    PageResult(url, "skipped", reason=f"out of scope: {out}", depth=depth)
                )
                continue
            validators = known_by_key.get(canonical_url(url), {})
            fetched = fetcher.fetch(url, **validators)
            page, documents, links, renderer = _visit(
                fetched, depth, config, spec, scope, frontier, renderer
            )
            frontier.queue.popleft()
            result.pages.append(page)
            if page.status is not None or page.state != "skipped":
                visited += 1
            pending.extend(documents)
            for link in links:
                if depth + 1 > config.max_depth:
                    if frontier.push(link, depth + 1):
                        frontier.queue.pop()
                        result.pages.append(
                            PageResult(
                                link,
                                "skipped",
                                reason=f"deeper than --depth {config.max_depth}",
                                depth=depth + 1,
                            )
                        )
                    continue
                frontier.push(link, depth + 1)
            if on_progress:
                on_progress(
                    visited,
                    min(config.max_pages, visited + len(frontier.queue)),
                    url=url,
                    state=page.state,
                    status=page.status,
                )
            if len(pending) >= config.batch_size:
                deliver()
        result.requests = fetcher.requests_made
        deliver()
        if state_file:
            state_file.unlink(missing_ok=True)
    except KeyboardInterrupt:
        result.interrupted = True
        result.requests = fetcher.requests_made
        deliver()
    finally:
        if renderer is not None:
            renderer.close()
        if own_fetcher:
            fetcher.close()
    return result


def _visit(
    fetched: FetchResult,
    depth: int,
    config: CrawlConfig,
    spec: dict[str, Any],
    scope: Scope,
    frontier: _Frontier,
    renderer: Any,
) -> tuple[PageResult, list[Document], list[str], Any]:
    """One fetched URL into its page result, documents and outgoing links."""
    page = PageResult(fetched.url, "skipped", status=fetched.status, depth=depth)
    if fetched.final_url != fetched.url:
        page.final_url = fetched.final_url
        out = scope.reason_out(fetched.final_url)
        if out:
            page.reason = f"redirected out of scope: {out}"
            return page, [], [], renderer
        key = canonical_url(fetched.final_url)
        if key in frontier.seen and key != canonical_url(fetched.url):
            page.reason = f"duplicate: redirects to {fetched.final_url}, already queued"
            return page, [], [], renderer
        frontier.seen.add(key)
    if fetched.status in (404, 410):
        page.state, page.reason = "gone", f"HTTP {fetched.status}"
        return page, [], [], renderer
    if fetched.not_modified:
        page.state = "same"
        return page, [], [], renderer
    if not fetched.ok:
        page.reason = fetched.skip_reason or f"HTTP {fetched.status}"
        return page, [], [], renderer
    options = {"crawl": spec}
    html = None
    if fetched.kind == "html" and config.render == "always":
        html, renderer, page.reason = _render(fetched.final_url, config, renderer)
        if html is None:
            return page, [], [], renderer
        page.rendered = True
    documents, parsed = page_documents(fetched, html=html, reader_options=options)
    if (
        config.render == "auto"
        and fetched.kind == "html"
        and parsed is not None
        and parsed.script_count
        and parsed.body_text_chars < AUTO_RENDER_BELOW_CHARS
    ):
        html, renderer, page.reason = _render(fetched.final_url, config, renderer)
        if html is None:
            return page, [], [], renderer
        page.rendered = True
        documents, parsed = page_documents(fetched, html=html, reader_options=options)
    if page.rendered:
        for document in documents:
            document.reader_options["rendered"] = True
    links = parsed.links if parsed is not None else []
    if parsed is not None and parsed.noindex:
        page.state, page.reason = "empty", "meta robots noindex"
        return page, [], links, renderer
    canonical = documents[0].metadata.get("canonical_url") if documents else None
    if canonical and canonical_url(canonical) != canonical_url(fetched.final_url):
        key = canonical_url(canonical)
        if key in frontier.seen and not scope.reason_out(canonical):
            page.reason = f"duplicate: its canonical URL {canonical} is crawled already"
            return page, [], links, renderer
        frontier.seen.add(key)
    if not documents:
        page.state, page.reason = "empty", "no main text found"
        return page, [], links, renderer
    page.state = "added"
    page.title = documents[0].title
    page.chars = sum(len(document.text) for document in documents)
    return page, documents, links, renderer


def _render(url: str, config: CrawlConfig, renderer: Any) -> tuple[str | None, Any, str | None]:
    """(rendered HTML, the renderer to reuse, None) or (None, renderer, why it failed)."""
    from infuse.scrape.render import Renderer

    renderer = renderer or Renderer(
        allow_private=config.fetch.allow_private,
        allow_networks=tuple(config.fetch.allow_networks),
        timeout_s=config.fetch.total_timeout,
    )
    try:
        return renderer.render(url), renderer, None
    except Exception as error:  # the browser's own errors: report them on the page, go on
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        return None, renderer, f"rendering failed: {first_line}"


def _sitemap_urls(fetcher: Fetcher, starts: list[str], limit: int = 50_000) -> list[str]:
    """Page URLs from the sitemaps robots.txt lists (or /sitemap.xml), indexes followed."""
    from lxml import etree

    from infuse.scrape.fetch import origin_of

    queue: list[str] = []
    for start in starts:
        queue += fetcher.sitemaps(start) or [origin_of(start) + "/sitemap.xml"]
    pages: list[str] = []
    done: set[str] = set()
    while queue and len(done) < 50 and len(pages) < limit:
        sitemap = queue.pop(0)
        if sitemap in done:
            continue
        done.add(sitemap)
        fetched = fetcher.fetch(sitemap, xml=True)
        if not fetched.ok or fetched.kind != "xml":
            continue
        try:
            root = etree.fromstring(
                fetched.body, parser=etree.XMLParser(resolve_entities=False, no_network=True)
            )
        except etree.XMLSyntaxError:
            continue
        locs = [loc.text.strip() for loc in root.iter("{*}loc") if loc.text]
        if etree.QName(root).localname == "sitemapindex":
            queue += locs
        else:
            pages += locs
    return pages[:limit]


def _save(path: Path, spec: dict[str, Any], frontier: _Frontier, result: CrawlResult) -> None:
    state = {
        "spec": spec,
        "queue": list(frontier.queue),
        "seen": sorted(frontier.seen),
        "pages": [asdict(page) for page in result.pages],
    }
    write_text_atomic(path, json.dumps(state))


def _restore(path: Path, spec: dict[str, Any], frontier: _Frontier, result: CrawlResult) -> None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(
            f"{path}: unreadable crawl state ({error}); delete it to start over."
        ) from error
    if state.get("spec") != spec:
        raise ConfigError(
            f"{path} holds the state of a different crawl ({state.get('spec', {}).get('start_urls')}); "
            "delete it or use another --state file."
        )
    frontier.queue.extend((url, depth) for url, depth in state["queue"])
    frontier.seen.update(state["seen"])
    result.pages.extend(PageResult(**page) for page in state["pages"])
