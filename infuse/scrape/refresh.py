"""`UrlRefresher`: how `KnowledgeBase.sync` keeps web pages current (the "url" source kind).

Pages are grouped by the crawl that found them (its start URLs and scope live in each
document's `reader_options["crawl"]`), and each crawl runs again with every known page
queued and asked conditionally (the stored ETag / Last-Modified):

- 304 Not Modified: unchanged, nothing fetched or re-embedded;
- 200: the page's document is returned; the knowledge base compares its content hash (the
  extracted text, title and content metadata, not the raw HTML or the validators), so a page
  that only changed its ads or its ETag stays unchanged;
- 404 / 410, a redirect out of the scope, or a page now outside the scope: gone (removed);
- a new page the crawl finds (linked from a changed page, or in the sitemap): added;
- anything else (timeout, 5xx, robots.txt now disallows): skipped with the reason, kept.

The crawl's own settings are reused: its delay, and its `--allow-private` (the user opted in
for that site when crawling it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from infuse.knowledge.documents import DocumentRecord
from infuse.scrape.crawl import CrawlConfig, crawl
from infuse.scrape.fetch import FetchConfig, Fetcher
from infuse.scrape.scope import canonical_url


def _spec(record: DocumentRecord) -> dict[str, Any]:
    spec = record.reader_options.get("crawl")
    if isinstance(spec, dict) and spec.get("start_urls"):
        return spec
    # A URL added without a crawl (e.g. `add_documents` by hand): check just that page.
    return {"start_urls": [record.source], "max_pages": 1, "max_depth": 0, "scope": "host"}


class UrlRefresher:
    """Re-crawls web sources for `KnowledgeBase.sync` (see the module docstring)."""

    kind = "url"

    def __init__(
        self,
        fetch_config: FetchConfig | None = None,
        *,
        on_progress: Callable[..., None] | None = None,
    ):
        self.fetch_config = fetch_config or FetchConfig()
        self.on_progress = on_progress
        self.crawls: list[Any] = []  # the CrawlResults of the last refresh, for reports

    def refresh(self, records: list[DocumentRecord]):
        """The current state of these records' pages, as a `RefreshResult`."""
        from infuse.knowledge.sources import RefreshResult

        groups: dict[str, list[DocumentRecord]] = {}
        for record in records:
            groups.setdefault(json.dumps(_spec(record), sort_keys=True), []).append(record)
        outcome = RefreshResult()
        self.crawls = []
        for key, group in groups.items():
            spec = json.loads(key)
            self._refresh_crawl(spec, group, outcome)
        return outcome

    def _refresh_crawl(self, spec: dict[str, Any], records: list[DocumentRecord], outcome) -> None:
        known: dict[str, dict[str, str]] = {}
        for record in records:
            options = record.reader_options
            validators = {
                name: options[name] for name in ("etag", "last_modified") if options.get(name)
            }
            known.setdefault(record.source, validators)
        fetch = replace(
            self.fetch_config,
            allow_private=bool(spec.get("allow_private", False)) or self.fetch_config.allow_private,
            allow_networks=list(spec.get("allow_networks", [])) or self.fetch_config.allow_networks,
            min_delay=float(spec.get("delay", self.fetch_config.min_delay)),
        )
        config = CrawlConfig(
            max_pages=max(int(spec.get("max_pages", 100)), len(known) + len(spec["start_urls"])),
            max_depth=int(spec.get("max_depth", 3)),
            scope=spec.get("scope", "host"),
            include=list(spec.get("include", [])),
            exclude=list(spec.get("exclude", [])),
            render=spec.get("render", "never"),
            fetch=fetch,
        )
        with Fetcher(fetch) as fetcher:
            result = crawl(
                spec["start_urls"],
                config,
                fetcher=fetcher,
                known=known,
                on_progress=self.on_progress,
            )
        self.crawls.append(result)
        for document in result.documents:  # keep the crawl's own spec, not the enlarged one
            document.reader_options["crawl"] = spec
        outcome.documents += result.documents
        known_by_key = {canonical_url(source): source for source in known}
        visited: set[str] = set()
        for page in result.pages:
            source = known_by_key.get(canonical_url(page.url))
            if source is None:
                continue
            visited.add(source)
            moved = page.final_url and canonical_url(page.final_url) != canonical_url(source)
            if page.state == "gone" or (page.reason or "").startswith(
                ("out of scope", "redirected out of scope")
            ):
                outcome.gone.append(source)
            elif moved and page.state == "added":
                outcome.gone.append(source)  # its content lives on under the new URL
            elif page.state == "empty":
                outcome.skipped.append(
                    {"path": source, "reason": f"{source}: {page.reason}; kept as it was"}
                )
            elif page.state == "skipped":
                outcome.skipped.append(
                    {"path": source, "reason": f"{source}: {page.reason}; kept as it was"}
                )
        for source in known:
            if source not in visited:
                outcome.skipped.append(
                    {
                        "path": source,
                        "reason": f"{source}: not reached by the crawl; kept as it was",
                    }
                )
