"""`infuse scrape extract` by selectors (no model) and by schema through a scripted server."""

from __future__ import annotations

import csv
import json

from scrape_site import FILLER, Response, article
from scripted_chat import ScriptedChatServer, in_order

from infuse.cli import main

PRODUCT = article(
    "Nimbus Pro",
    [FILLER, "Nimbus Pro costs <span class='price'>$20</span> a month."],
    extra="<ul class='tags'><li>storage</li><li>teams</li></ul><a class='more' href='/pro/specs'>specs</a>",
)


def test_selectors_from_a_url_to_csv_and_dataset(site, tmp_path, capsys):
    site.pages["/pro"] = Response(PRODUCT)
    selectors = tmp_path / "selectors.json"
    selectors.write_text(
        json.dumps(
            {
                "name": "css:h1",
                "price": "xpath://span[@class='price']/text()",
                "tags": {"css": "ul.tags li", "all": True},
                "specs": {"css": "a.more", "attr": "href"},
                "sku": "css:.sku",
            }
        )
    )
    out, rows = tmp_path / "records.csv", tmp_path / "rows.jsonl"
    code = main(
        [
            "scrape",
            "extract",
            site.url("/pro"),
            "--selectors",
            str(selectors),
            "--allow-private",
            "--delay",
            "0",
            "--out",
            str(out),
            "--to-dataset",
            str(rows),
            "--json",
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    record = payload["records"][0]
    assert record["data"] == {
        "name": "Nimbus Pro",
        "price": "$20",
        "tags": ["storage", "teams"],
        "specs": site.url("/pro/specs"),
        "sku": None,
    }
    assert record["flags"] == [{"field": "sku", "reason": "selector matched nothing; value null"}]
    with out.open() as handle:
        row = next(csv.DictReader(handle))
    assert (
        row["price"] == "$20"
        and json.loads(row["tags"]) == ["storage", "teams"]
        and "sku" in row["flags"]
    )
    assert json.loads(rows.read_text().splitlines()[0])["url"] == site.url("/pro")


def test_schema_extraction_from_a_saved_page_through_a_server(tmp_path, capsys):
    page = tmp_path / "pages" / "pro.html"
    page.parent.mkdir()
    page.write_text(PRODUCT)
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"name": {"type": "string"}, "price": {"type": "string"}},
            }
        )
    )
    answer = {
        "name": {"value": "Nimbus Pro", "evidence": "Nimbus Pro costs"},
        "price": {"value": "$25", "evidence": "costs $25 a month"},
    }
    server = ScriptedChatServer(in_order([json.dumps(answer)]))
    try:
        code = main(
            [
                "scrape",
                "extract",
                str(tmp_path / "pages"),
                "--schema",
                str(schema),
                "--model",
                "stub",
                "--base-url",
                server.base_url,
                "--out",
                str(tmp_path / "r.jsonl"),
                "--json",
            ]
        )
    finally:
        server.close()
    assert code == 0
    record = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert record["url"] == str(page) and record["data"] == {"name": "Nimbus Pro", "price": None}
    assert record["flags"][0]["field"] == "price"


def test_extract_needs_schema_or_selectors(capsys):
    assert main(["scrape", "extract", "https://example.com/"]) == 1
    assert "exactly one of --schema" in capsys.readouterr().err
