"""Web knowledge: a polite, safe crawler; main content as Markdown; structured extraction.

    fetch.py      Fetcher: robots.txt, per-host delays, size/time/redirect limits (one client for all)
    safety.py     refuse private/loopback/link-local targets on the resolved address
    scope.py      which URLs a crawl may visit; canonical URLs
    content.py    a fetched page into Documents (trafilatura Markdown + metadata + links)
    crawl.py      crawl(): breadth-first, resumable, every page accounted for
    render.py     Renderer: JavaScript pages through headless Chromium (Playwright)
    refresh.py    UrlRefresher: `kb sync` re-crawls web sources with conditional requests
    structured.py extract_record(): a JSON-Schema record through a ChatModel, an evidence quote per field
    selecting.py  select_record(): the same record shape from CSS/XPath selectors, no model
    extract.py    extract_pages(): records from URLs or saved pages; JSONL/CSV/dataset rows

Light to import: httpx, trafilatura, lxml and Playwright load inside the functions.
"""

from __future__ import annotations

from infuse.exports import lazy_exports

# `crawl` is imported now: the submodule of the same name would otherwise shadow the function
# once anything imports `infuse.scrape.crawl` (the fetcher and content modules stay lazy).
from infuse.scrape.crawl import crawl as crawl

__getattr__, _lazy = lazy_exports(__name__, {
    "CrawlConfig": "infuse.scrape.crawl",
    "CrawlResult": "infuse.scrape.crawl",
    "extract_pages": "infuse.scrape.extract",
    "UrlRefresher": "infuse.scrape.refresh",
    "Fetcher": "infuse.scrape.fetch",
})
__all__ = [*_lazy, "crawl"]  # noqa: PLE0604
