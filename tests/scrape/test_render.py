"""JavaScript-only pages through a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from scrape_site import FILLER, Response, Site

from infuse.scrape.crawl import CrawlConfig, crawl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access("/usr/bin/chromium", os.X_OK),
        reason="needs Debian chromium (scripts/install-system.sh)",
    ),
]

JS_ONLY = (
    "<!doctype html><html lang='en'><head><title>App</title></head><body><div id='app'></div>"
    "<script>document.getElementById('app').innerHTML = '<article><h1>Rendered guide</h1>"
    + "".join(f"<p>{FILLER} Part {n}.</p>" for n in range(3))
    + "</article>';</script></body></html>"
)


def test_auto_renders_a_js_only_page(site, fast_config):
    site.pages["/"] = Response(JS_ONLY)
    never = crawl(site.url("/"), CrawlConfig(render="never", sitemaps=False, fetch=fast_config))
    assert never.pages[0].state == "empty" and not never.documents
    auto = crawl(site.url("/"), CrawlConfig(render="auto", sitemaps=False, fetch=fast_config))
    assert auto.pages[0].rendered and auto.pages[0].state == "added"
    document = auto.documents[0]
    assert "Rendered guide" in document.text and "Part 2." in document.text
    assert document.reader_options["rendered"] is True


def test_render_refuses_private_requests_the_page_makes(site, fast_config):
    # The page is served from 127.0.0.2 (opened with --allow-network); its script calls
    # 127.0.0.1, which the route guard must refuse before Chromium connects.
    site.pages["/secret"] = Response("top secret", content_type="text/plain")
    front = Site(host="127.0.0.2")
    try:
        front.pages["/"] = Response(
            "<html><body><div id='app'></div><script>"
            f"fetch('{site.url('/secret')}').then(r => r.text()).then(t => "
            "document.getElementById('app').textContent = t).catch(() => "
            f"document.getElementById('app').innerHTML = '<p>{FILLER} The call was blocked.</p>');"
            "</script></body></html>"
        )
        config = CrawlConfig(
            render="always",
            sitemaps=False,
            fetch=replace(
                fast_config, allow_private=False, allow_networks=["127.0.0.2/32"], obey_robots=False
            ),
        )
        result = crawl(front.url("/"), config)
    finally:
        front.close()
    assert site.log == []  # Chromium never reached 127.0.0.1
    assert "blocked" in result.documents[0].text and "top secret" not in result.documents[0].text
