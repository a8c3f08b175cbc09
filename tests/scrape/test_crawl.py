"""crawl() over the small site: scope, robots, traps, dedupe, sitemap, depth, resume."""

from __future__ import annotations

from dataclasses import replace

import pytest
from scrape_site import FILLER, Response, article

from infuse.errors import ConfigError
from infuse.scrape.crawl import CrawlConfig, crawl
from infuse.scrape.scope import Scope, canonical_url


def by_path(result, base):
    return {page.url.removeprefix(base): page for page in result.pages}


def test_crawl_small_site_accounts_for_every_page(small_site, fast_config):
    config = CrawlConfig(max_pages=50, max_depth=3, fetch=replace(fast_config, max_bytes=100_000))
    progress = []
    result = crawl(
        small_site.url("/"),
        config,
        on_progress=lambda done, total, **info: progress.append((done, info["url"])),
    )
    pages = by_path(result, small_site.base)
    added = sorted(path for path, page in pages.items() if page.state == "added")
    assert added == ["/", "/faq.html", "/guide.html", "/orphan.html"]  # orphan: from the sitemap
    assert "robots.txt" in pages["/private/secret.html"].reason
    assert pages["/loop1"].reason.startswith("redirect loop")
    assert "max_bytes" in pages["/big.html"].reason
    assert "after decompression" in pages["/bomb.html"].reason
    assert "image/png" in pages["/logo.png"].reason
    assert "timed out" in pages["/slow.html"].reason
    outside = pages.pop("https://elsewhere.example/page")
    assert outside.state == "skipped" and "out of scope" in outside.reason
    # "#install" and "?utm_source=x" are the same page as /guide.html: fetched once.
    assert small_site.hits["/guide.html"] == 1
    assert "/private/secret.html" not in small_site.paths()
    assert result.counts["added"] == 4 and result.counts["pages"] == len(result.pages)
    assert progress and progress[-1][0] == len(
        [p for p in result.pages if p.status or p.state != "skipped"]
    )

    guide = next(doc for doc in result.documents if doc.source == small_site.url("/guide.html"))
    assert guide.title == "Nimbus guide"
    assert "## Install" in guide.text and "- Download nimbus" in guide.text
    assert "| Basic | $5 |" in guide.text and "nimbus --start" in guide.text
    assert f"[FAQ]({small_site.base}/faq.html)" in guide.text  # links absolute
    assert "Footer boilerplate" not in guide.text
    assert (
        guide.metadata["language"] == "en" and guide.metadata["description"] == "About Nimbus guide"
    )
    assert guide.reader_options["etag"] == '"guide-v1"' and "etag" not in guide.metadata
    assert guide.reader_options["crawl"]["start_urls"] == [small_site.url("/")]


def test_depth_and_max_pages(small_site, fast_config):
    shallow = crawl(
        small_site.url("/"), CrawlConfig(max_depth=0, sitemaps=False, fetch=fast_config)
    )
    assert [page.state for page in shallow.pages if page.state == "added"] == ["added"]
    assert any(page.reason == "deeper than --depth 0" for page in shallow.pages)
    capped = crawl(small_site.url("/"), CrawlConfig(max_pages=2, fetch=fast_config))
    fetched = [page for page in capped.pages if page.status]
    assert len(fetched) == 2


def test_scope_modes_and_globs():
    host = Scope(["https://docs.example.com/guide/intro.html"])
    assert host.reason_out("https://docs.example.com/other") is None
    assert "other host" in host.reason_out("https://api.example.com/")
    domain = Scope(["https://www.example.com/"], mode="domain")
    assert domain.reason_out("https://docs.example.com/x") is None
    assert domain.reason_out("https://example.org/") is not None
    prefix = Scope(["https://example.com/guide/intro.html"], mode="prefix", exclude=["*.pdf"])
    assert prefix.reason_out("https://example.com/guide/setup.html") is None
    assert "prefix" in prefix.reason_out("https://example.com/blog/")
    assert "--exclude" in prefix.reason_out("https://example.com/guide/a.pdf")
    include = Scope(["https://example.com/"], include=["*/docs/*"])
    assert "--include" in include.reason_out("https://example.com/blog/")
    assert (
        canonical_url("HTTPS://Example.com:443?b=1&utm_medium=x&a=2#top")
        == "https://example.com/?a=2&b=1"
    )
    with pytest.raises(ConfigError, match="not an http"):
        Scope(["ftp://example.com/"])


def test_canonical_link_dedupes(site, fast_config):
    site.pages["/"] = Response(article("Home", [FILLER], ["/a.html", "/a-print.html"]))
    site.pages["/a.html"] = Response(article("A", [FILLER]))
    site.pages["/a-print.html"] = Response(
        article("A", [FILLER]).replace(
            "<head>", f'<head><link rel="canonical" href="{site.base}/a.html">'
        )
    )
    result = crawl(site.url("/"), CrawlConfig(sitemaps=False, fetch=fast_config))
    pages = by_path(result, site.base)
    assert pages["/a.html"].state == "added"
    assert "canonical URL" in pages["/a-print.html"].reason
    assert len(result.documents) == 2


def test_interrupt_and_resume(site, fast_config, tmp_path):
    links = [f"/p{number}.html" for number in range(6)]
    site.pages["/"] = Response(article("Home", [FILLER], links))
    for link in links:
        site.pages[link] = Response(article(f"Page {link}", [FILLER]))
    state = tmp_path / "state.json"
    delivered = []

    def stop_after_three(done, total, **info):
        if done == 3:
            raise KeyboardInterrupt

    config = CrawlConfig(sitemaps=False, batch_size=2, fetch=fast_config)
    first = crawl(
        site.url("/"),
        config,
        state_path=state,
        on_documents=delivered.extend,
        on_progress=stop_after_three,
    )
    assert first.interrupted and state.is_file()
    assert len(delivered) == 3  # pending documents were handed over before stopping
    second = crawl(site.url("/"), config, state_path=state, on_documents=delivered.extend)
    assert not second.interrupted and not state.exists()
    assert sorted(doc.source for doc in delivered) == sorted(site.url(p) for p in ["/", *links])
    assert all(hits == 1 for path, hits in site.hits.items() if path.endswith(".html"))
    with pytest.raises(ConfigError, match="different crawl"):
        state.write_text('{"spec": {"start_urls": ["http://other/"]}}')
        crawl(site.url("/"), config, state_path=state)


def test_pdf_goes_through_the_knowledge_readers(site, fast_config):
    import io

    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.setTitle("Price list")
    pdf.drawString(72, 760, "The Pro plan costs 20 dollars a month.")
    pdf.save()
    site.pages["/"] = Response(article("Home", [FILLER], ["/prices.pdf"]))
    site.pages["/prices.pdf"] = Response(buffer.getvalue(), content_type="application/pdf")
    result = crawl(site.url("/"), CrawlConfig(sitemaps=False, fetch=fast_config))
    pdf_document = next(doc for doc in result.documents if doc.source == site.url("/prices.pdf"))
    assert "20 dollars a month" in pdf_document.text
    assert pdf_document.reader_options["crawl"]["start_urls"] == [site.url("/")]
