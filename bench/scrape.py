"""Benchmark of infuse.scrape: content quality, extraction speed, crawl speed, render speed.

    PYTHONPATH=. python bench/scrape.py [--pages 1000] [--render-pages 10] [--extraction-model smollm2]

Quality: article-body token F1 on 32 documentation pages saved from Debian `-doc` packages
(BSD/MIT licensed; licences beside them in bench/data/scrape/third_party/pages/*/copyright),
against the gold bodies in bench/data/scrape/gold (see make_gold.py), for infuse (trafilatura
with our options, Markdown), plain `trafilatura.extract` (defaults) and the whole page's text.
Tokens are lower-cased words; Markdown link targets and ordered-list numbers are dropped
before counting (the text is measured, not the URLs and list syntax we keep).

Speed: extraction pages/s on one core (parse_html vs plain trafilatura.extract); crawl
pages/s over a local 1,000-page site with the politeness delay 0 (robots.txt, scope, limits,
extraction, link discovery) vs a bare sequential httpx GET loop over the same URLs; rendered
pages/s through headless Chromium (Playwright), launch included.

With --extraction-model: schema extraction (name, price, SKU, in stock) on 20 labelled
synthetic product pages (5 layouts x 4 products): share of fields correct, wrong (a value
that passed the evidence check but differs from the label) and null (no proof found).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DATA = Path(__file__).parent / "data" / "scrape"
PAGES = DATA / "third_party" / "pages"  # third-party pages, each package's licence beside them
WORD = re.compile(r"\w+", re.UNICODE)
LINK = re.compile(r"\]\([^)]*\)")
LIST_NUMBER = re.compile(r"^\s*\d+\.\s", re.M)


def tokens(text: str) -> Counter:
    """Lower-cased words; Markdown syntax (link targets, list numbers) is not text."""
    return Counter(WORD.findall(LIST_NUMBER.sub(" ", LINK.sub("]", text)).lower()))


def f1(gold: Counter, found: Counter) -> tuple[float, float, float]:
    common = sum((gold & found).values())
    if not common:
        return 0.0, 0.0, 0.0
    precision, recall = common / sum(found.values()), common / sum(gold.values())
    return precision, recall, 2 * precision * recall / (precision + recall)


def whole_page_text(html: str) -> str:
    from lxml import html as lxml_html

    tree = lxml_html.fromstring(html)
    for element in tree.xpath("//script|//style|//noscript"):
        element.drop_tree()
    return " ".join(tree.text_content().split())


def quality() -> tuple[list[list[str]], int]:
    import trafilatura

    from infuse.scrape.content import parse_html

    pages = sorted(PAGES.rglob("*.html"))
    scores: dict[str, list[tuple[float, float, float]]] = {
        "infuse": [],
        "trafilatura": [],
        "whole page": [],
    }
    for page in pages:
        html = page.read_text(encoding="utf-8")
        gold = tokens(
            (DATA / "gold" / page.parent.name / (page.stem + ".txt")).read_text(encoding="utf-8")
        )
        url = f"https://docs.example/{page.parent.name}/{page.name}"
        scores["infuse"].append(f1(gold, tokens(parse_html(html, url).markdown)))
        scores["trafilatura"].append(f1(gold, tokens(trafilatura.extract(html) or "")))
        scores["whole page"].append(f1(gold, tokens(whole_page_text(html))))
    rows = [
        [name, *(f"{statistics.mean(values[i] for values in triples):.3f}" for i in range(3))]
        for name, triples in scores.items()
    ]
    return rows, len(pages)


def extraction_speed(min_seconds: float = 3.0) -> list[list[str]]:
    import trafilatura

    from infuse.scrape.content import parse_html

    htmls = [page.read_text(encoding="utf-8") for page in sorted(PAGES.rglob("*.html"))]
    rows = []
    for name, run in (
        (
            "infuse parse_html (Markdown, metadata, links)",
            lambda html: parse_html(html, "https://docs.example/p.html"),
        ),
        ("plain trafilatura.extract", lambda html: trafilatura.extract(html)),
    ):
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < min_seconds:
            for html in htmls:
                run(html)
            done += len(htmls)
        rows.append([name, f"{done / (time.perf_counter() - started):.1f}"])
    return rows


def site_server(pages: int, js: bool = False):
    """A local site: page i links to pages 10i+1..10i+10 (a tree), each with some prose."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms ACK wait

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            match = re.fullmatch(r"/p(\d+)\.html", self.path)
            if self.path == "/robots.txt":
                body, kind = b"User-agent: *\nDisallow: /private/\n", "text/plain"
            elif self.path == "/" or match:
                number = int(match.group(1)) if match else 0
                children = [n for n in range(10 * number + 1, 10 * number + 11) if n < pages]
                links = "".join(f'<li><a href="/p{n}.html">Page {n}</a></li>' for n in children)
                prose = "".join(
                    f"<p>Paragraph {k} of page {number} explains one more detail of the product "
                    "in a few plain sentences, so that the extractor keeps it as content.</p>"
                    for k in range(4)
                )
                article = f"<article><h1>Page {number}</h1>{prose}</article>"
                if js:
                    article = (
                        "<div id='app'></div><script>document.getElementById('app').innerHTML = "
                        + repr(article)
                        + ";</script>"
                    )
                body = (
                    f"<html><head><title>Page {number}</title></head><body><nav><ul>{links}</ul></nav>"
                    f"<main>{article}</main><footer>footer</footer></body></html>"
                ).encode()
                kind = "text/html; charset=utf-8"
            else:
                body, kind = b"not found", "text/plain"
                self.send_response(404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def crawl_speed(pages: int) -> list[list[str]]:
    import httpx

    from infuse.scrape.crawl import CrawlConfig, crawl
    from infuse.scrape.fetch import FetchConfig

    server, base = site_server(pages)
    try:
        config = CrawlConfig(
            max_pages=pages,
            max_depth=10,
            sitemaps=False,
            fetch=FetchConfig(min_delay=0.0, adapt_to_latency=False, allow_private=True),
        )
        started = time.perf_counter()
        result = crawl(base + "/", config)
        crawl_s = time.perf_counter() - started
        added = result.counts.get("added", 0)
        urls = [base + "/"] + [f"{base}/p{n}.html" for n in range(1, pages)]
        started = time.perf_counter()
        with httpx.Client() as client:
            for url in urls:
                client.get(url).raise_for_status()
        bare_s = time.perf_counter() - started
    finally:
        server.shutdown()
    return [
        [f"infuse crawl ({added} pages with text, delay 0)", f"{added / crawl_s:.1f}"],
        [
            f"bare httpx GET loop ({len(urls)} pages, no robots/extraction)",
            f"{len(urls) / bare_s:.1f}",
        ],
    ]


def render_speed(pages: int) -> list[list[str]]:
    from infuse.scrape.render import Renderer, find_chromium

    try:
        find_chromium()
    except Exception as error:  # no Chromium here: say so in the table
        return [["rendered (Chromium)", f"skipped: {error}"]]
    server, base = site_server(pages, js=True)
    try:
        started = time.perf_counter()
        with Renderer(allow_private=True) as renderer:
            rendered = [renderer.render(f"{base}/p{n}.html") for n in range(pages)]
        seconds = time.perf_counter() - started
    finally:
        server.shutdown()
    ok = sum("explains one more detail" in html for html in rendered)
    return [
        [
            f"rendered by Chromium ({ok}/{pages} with text, launch included)",
            f"{pages / seconds:.2f}",
        ]
    ]


PRODUCTS = [
    ("Nimbus Pro", "$20", "NB-1001", True),
    ("Cirrus Lite", "$5", "CR-2002", False),
    ("Stratus Max", "$99", "ST-3003", True),
    ("Cumulus Team", "$45", "CU-4004", True),
]
LAYOUTS = [
    "<h1>{name}</h1><p>Price: {price}</p><p>SKU: {sku}</p><p>{stock}</p>",
    "<table><tr><th>Product</th><td>{name}</td></tr><tr><th>Cost</th><td>{price} per month</td></tr>"
    "<tr><th>Article number</th><td>{sku}</td></tr><tr><th>Availability</th><td>{stock}</td></tr></table>",
    "<h2>{name}</h2><ul><li>Only {price} a month</li><li>Item {sku}</li><li>{stock}</li></ul>",
    "<p>Meet {name}, our plan for growing teams. It costs {price} monthly ({stock}). "
    "Order code {sku}.</p>",
    "<dl><dt>Name</dt><dd>{name}</dd><dt>Price</dt><dd>{price}</dd><dt>SKU</dt><dd>{sku}</dd></dl><p>{stock}</p>",
]
PRODUCT_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "price": {"type": "string"},
        "sku": {"type": "string"},
        "in_stock": {"type": "boolean"},
    },
    "required": ["name", "price", "sku", "in_stock"],
}


def extraction_accuracy(model_spec: str) -> list[list[str]]:
    """Field accuracy on 20 labelled synthetic product pages (5 layouts x 4 products)."""
    import inspect

    from infuse.llm import load_chat_model
    from infuse.scrape.content import parse_html
    from infuse.scrape.structured import extract_record, normalise

    # The transformers backend constrains decoding with the JSON grammar (xgrammar).
    params = inspect.signature(load_chat_model).parameters
    model = load_chat_model(
        model_spec, **({"backend": "transformers"} if "backend" in params else {})
    )
    constrained = "response_format" in inspect.signature(model.generate).parameters
    correct = wrong = nulled = 0
    started = time.perf_counter()
    for layout in LAYOUTS:
        for name, price, sku, in_stock in PRODUCTS:
            stock = "In stock" if in_stock else "Out of stock"
            body = layout.format(name=name, price=price, sku=sku, stock=stock)
            html = f"<html><head><title>{name}</title></head><body><main><article>{body}</article></main></body></html>"
            text = parse_html(html, "https://shop.example/p").markdown or body
            result = extract_record(
                text,
                url="https://shop.example/p",
                schema=PRODUCT_SCHEMA,
                model=model,
                max_new_tokens=160,
            )
            data = result.data or {}
            for field, label in (
                ("name", name),
                ("price", price),
                ("sku", sku),
                ("in_stock", in_stock),
            ):
                value = data.get(field)
                if value is None:
                    nulled += 1
                elif (
                    (normalise(str(value)) == normalise(str(label)))
                    if field != "in_stock"
                    else value == label
                ):
                    correct += 1
                else:
                    wrong += 1
    seconds = time.perf_counter() - started
    total = correct + wrong + nulled
    mode = (
        "constrained decoding"
        if constrained
        else "prompt only (no response_format in this ChatModel)"
    )
    return [
        [
            f"{model_spec}, {mode}",
            f"{correct / total:.2f}",
            f"{wrong / total:.2f}",
            f"{nulled / total:.2f}",
            f"{20 / seconds:.2f}",
        ]
    ]


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    import importlib.metadata as metadata

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000, help="pages of the local crawl site")
    parser.add_argument("--render-pages", type=int, default=10)
    parser.add_argument(
        "--extraction-model",
        default=None,
        help="also measure schema extraction with this model (e.g. smollm2)",
    )
    args = parser.parse_args()
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("trafilatura", "httpx", "protego", "playwright")
    )
    print(
        f"# infuse.scrape benchmark\n\n{platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; {versions}\n"
    )
    rows, count = quality()
    print(
        table(
            f"Article-body token F1 on {count} saved documentation pages (mean per page)",
            ["extractor", "precision", "recall", "F1"],
            rows,
        )
    )
    print(table("Extraction speed, one core", ["extractor", "pages/s"], extraction_speed()))
    print(
        table(
            f"Crawl speed, local {args.pages}-page site",
            ["crawler", "pages/s"],
            crawl_speed(args.pages),
        )
    )
    print(table("Render speed", ["renderer", "pages/s"], render_speed(args.render_pages)))
    if args.extraction_model:
        print(
            table(
                "Schema extraction on 20 labelled synthetic product pages (4 fields each)",
                ["model", "correct", "wrong", "null (no proof)", "pages/s"],
                extraction_accuracy(args.extraction_model),
            )
        )


if __name__ == "__main__":
    main()
