"""Fixtures for the crawler tests: a real HTTP server on 127.0.0.1 serving a small site."""

from __future__ import annotations

import pytest
from scrape_site import FILLER, Response, Site, article, gzip_bomb

from infuse.scrape.fetch import FetchConfig


@pytest.fixture
def site():
    server = Site()
    yield server
    server.close()


@pytest.fixture
def fast_config():
    """Fetch settings for tests: private addresses allowed (the server is on 127.0.0.1), no delays."""
    return FetchConfig(min_delay=0.0, adapt_to_latency=False, allow_private=True, read_timeout=0.5)


@pytest.fixture
def small_site(site):
    """A site with the traps a crawler meets: robots rules, loops, bombs, binaries, slow pages."""
    pages = site.pages
    pages["/robots.txt"] = Response(
        f"User-agent: *\nDisallow: /private/\nCrawl-delay: 0\nSitemap: {site.base}/sitemap.xml\n",
        content_type="text/plain",
    )
    pages["/sitemap.xml"] = Response(
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{site.base}/orphan.html</loc></url></urlset>",
        content_type="application/xml",
    )
    links = [
        "/guide.html",
        "/private/secret.html",
        "/loop1",
        "/big.html",
        "/bomb.html",
        "/logo.png",
        "/slow.html",
        "https://elsewhere.example/page",
        "/guide.html#install",
        "/guide.html?utm_source=x",
    ]
    pages["/"] = Response(article("Home of Nimbus", [FILLER, "Nimbus stores clouds."], links))
    pages["/guide.html"] = Response(
        article(
            "Nimbus guide",
            [FILLER, 'Read the <a href="/faq.html">FAQ</a> for answers.'],
            extra="<h2>Install</h2><ul><li>Download nimbus</li><li>Run nimbus</li></ul>"
            "<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Basic</td><td>$5</td></tr></table>"
            "<pre><code>nimbus --start</code></pre>",
        ),
        etag='"guide-v1"',
    )
    pages["/faq.html"] = Response(article("FAQ", [FILLER, "Is nimbus free? Partly."]))
    pages["/orphan.html"] = Response(
        article("Orphan page", [FILLER, "Only the sitemap links here."])
    )
    pages["/private/secret.html"] = Response(article("Secret", [FILLER]))
    pages["/loop1"] = Response("", status=302, headers={"Location": "/loop2"})
    pages["/loop2"] = Response("", status=302, headers={"Location": "/loop1"})
    pages["/big.html"] = Response(article("Big", ["x" * 300_000]))
    pages["/bomb.html"] = Response(gzip_bomb(20_000_000), headers={"Content-Encoding": "gzip"})
    pages["/logo.png"] = Response(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, content_type="image/png")
    pages["/slow.html"] = Response(article("Slow", [FILLER]), delay_s=1.0)
    return site


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory):
    """The knowledge tests' tiny random sentence-transformers model (built, never downloaded)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "knowledge" / "conftest.py"
    spec = importlib.util.spec_from_file_location("knowledge_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))
