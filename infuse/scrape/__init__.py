"""Web knowledge: a polite, safe crawler; main content as Markdown; structured extraction.

    fetch.py      Fetcher: robots.txt, per-host delays, size/time/redirect limits (one client for all)
    safety.py     refuse private/loopback/link-local targets on the resolved address
    scope.py      which URLs a crawl may visit; canonical URLs
    content.py    a fetched page into Documents (trafilatura Markdown + metadata + links)
    crawl.py      crawl(): breadth-first, resumable, every page accounted for
    render.py     Renderer: JavaScript pages through headless Chromium (Playwright)
    refresh.py    UrlRefresher: `kb sync` re-crawls web sources with conditional requests
    structured.py extract_records(): JSON-Schema records with evidence quotes, or CSS/XPath selectors

Light to import: httpx, trafilatura, lxml and Playwright load inside the functions.
"""
