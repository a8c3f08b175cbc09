"""Web pages in the knowledge base kept current: crawl --to-kb, change the site, kb sync."""

from __future__ import annotations

import json

from scrape_site import FILLER, Response, article

from infuse.cli import main
from infuse.knowledge.kb import KnowledgeBase
from infuse.scrape.crawl import CrawlConfig, crawl
from infuse.scrape.refresh import UrlRefresher


def build_site(site):
    links = ["/stable.html", "/changing.html", "/vanishing.html", "/tagged.html"]
    site.pages["/"] = Response(article("Docs home", [FILLER], links))
    site.pages["/stable.html"] = Response(article("Stable", [FILLER, "Nothing changes here."]))
    site.pages["/changing.html"] = Response(
        article("Changing", [FILLER, "The limit is 10 buckets."])
    )
    site.pages["/vanishing.html"] = Response(article("Vanishing", [FILLER, "Soon gone."]))
    site.pages["/tagged.html"] = Response(
        article("Tagged", [FILLER, "Served with an ETag."]), etag='"t1"'
    )


def test_crawl_into_kb_then_sync_counts_changes(site, fast_config, tiny_embedder_dir, tmp_path):
    build_site(site)
    config = CrawlConfig(sitemaps=False, fetch=fast_config)
    with KnowledgeBase(tmp_path / "kb", create=True, embedder=str(tiny_embedder_dir)) as knowledge:
        result = crawl(site.url("/"), config, on_documents=knowledge.add_documents)
        assert result.counts["added"] == 5
        sources = {record.source for record in knowledge.documents()}
        assert sources == {
            site.url(path)
            for path in ["/", "/stable.html", "/changing.html", "/vanishing.html", "/tagged.html"]
        }
        tagged = next(
            record for record in knowledge.documents() if record.source.endswith("tagged.html")
        )
        assert tagged.reader_options["etag"] == '"t1"' and "etag" not in tagged.metadata

        # The site changes: one page edited (and links a new one), one removed; the rest as is.
        site.pages["/changing.html"] = Response(
            article("Changing", [FILLER, "The limit is 25 buckets."], ["/new.html"])
        )
        site.pages["/new.html"] = Response(article("New page", [FILLER, "Brand new."]))
        site.pages["/vanishing.html"] = Response("gone", status=410, content_type="text/plain")
        site.log.clear()
        report = knowledge.sync(refreshers=[UrlRefresher(fast_config)], prune=True)

        assert report.updated == [site.url("/changing.html")]
        assert report.removed == [site.url("/vanishing.html")]
        assert report.added == [site.url("/new.html")]
        assert sorted(report.unchanged) == sorted(
            site.url(p) for p in ["/", "/stable.html", "/tagged.html"]
        )
        tagged_requests = [headers for path, headers in site.log if path == "/tagged.html"]
        assert tagged_requests and tagged_requests[0]["if-none-match"] == '"t1"'  # answered 304
        hits = knowledge.search("How many buckets is the limit?", k=10, mode="bm25")
        assert any("25 buckets" in hit.chunk.text for hit in hits)
        assert not any("10 buckets" in hit.chunk.text for hit in hits)

        # A second sync with nothing changed: all unchanged, nothing written.
        again = knowledge.sync(refreshers=[UrlRefresher(fast_config)])
        assert not again.added and not again.updated and not again.removed
        assert len(again.unchanged) == 5


def crawl_into(kb, site, embedder_dir, tmp_path) -> int:
    """`infuse scrape crawl` of the whole test site into knowledge base `kb` (JSON out)."""
    flags = ["--allow-private", "--delay", "0", "--no-sitemap", "--render", "never", "--json"]
    return main(
        ["scrape", "crawl", site.url("/"), "--to-kb", str(kb), "--embedder", str(embedder_dir),
         "--state", str(tmp_path / "s.json"), *flags]
    )


def test_cli_crawl_to_kb(site, tiny_embedder_dir, tmp_path, capsys):
    build_site(site)
    kb = tmp_path / "kb"
    assert crawl_into(kb, site, tiny_embedder_dir, tmp_path) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["kb"] == {"added": 5, "updated": 0, "unchanged": 0}
    assert main(["kb", "list", "--kb", str(kb), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(listed["documents"]) == 5


def test_cli_kb_sync_recrawls_web_pages(site, tiny_embedder_dir, tmp_path, capsys):
    build_site(site)
    kb = tmp_path / "kb"
    assert crawl_into(kb, site, tiny_embedder_dir, tmp_path) == 0
    capsys.readouterr()
    site.pages["/stable.html"] = Response(article("Stable", [FILLER, "Now it changed."]))
    del site.pages["/vanishing.html"]  # 404
    assert main(["kb", "sync", "--kb", str(kb), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["updated"] == [site.url("/stable.html")]
    assert report["removed"] == [site.url("/vanishing.html")]
    assert len(report["unchanged"]) == 3 and report["added"] == []


def test_extract_records_into_kb(site, tiny_embedder_dir, tmp_path, capsys):
    site.pages["/p1"] = Response(article("Nimbus Pro", [FILLER, "Price: <b class='price'>$20</b>"]))
    selectors = tmp_path / "sel.json"
    selectors.write_text(json.dumps({"name": "css:h1", "price": "css:b.price"}))
    kb = tmp_path / "kb"
    assert (
        main(
            [
                "scrape",
                "extract",
                site.url("/p1"),
                "--selectors",
                str(selectors),
                "--allow-private",
                "--delay",
                "0",
                "--to-kb",
                str(kb),
                "--embedder",
                str(tiny_embedder_dir),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["kb"]["added"] == 1
    with KnowledgeBase(kb) as knowledge:
        (record,) = knowledge.documents()
        assert record.source == "record:" + site.url("/p1") and record.metadata["url"] == site.url(
            "/p1"
        )
        assert "price: $20" in knowledge.chunks(record.doc_id)[0].text
