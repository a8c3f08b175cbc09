"""A fetched page into a `Document`: main content as Markdown (trafilatura), metadata, links.

trafilatura finds the article body and drops navigation and boilerplate; we keep its
Markdown (headings, lists, tables, code, links made absolute against the page URL) and add
what it leaves out: the page language (`<html lang>`), the links to crawl next (every
`<a href>`, not only those in the main content) and `<meta name="robots">`.

The document's hashed metadata holds only what describes the content (canonical URL,
description, author, date, language); fetch validators (ETag, Last-Modified) go to
`reader_options`, so a server that changes its ETag on every answer does not make an
unchanged page look changed (TEAM contract 2).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from infuse.knowledge.documents import Document
from infuse.scrape.fetch import FetchResult

_CODE_THEN_TABLE = re.compile(r"```\n\|")
PILCROW = "\u00b6"
_PERMALINK = re.compile(r"\[[\u00b6#]?\]\([^)]*\)")  # [¶](url#anchor), [](url): permalinks
_TRAILING_PILCROW = re.compile(r"^(#+ .*?)\s*\u00b6\s*$", re.M)
_INTRAWORD_UNDERSCORE = re.compile(r"(?<=\w)\\_|\\_(?=\w)")
_MARKDOWN_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


@dataclass
class PageContent:
    """What one HTML page holds for us."""

    markdown: str
    title: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    noindex: bool = False
    nofollow: bool = False
    script_count: int = 0
    body_text_chars: int = 0  # all visible text of the page, for the render decision


def parse_html(html: str, url: str) -> PageContent:
    """Main content as Markdown, metadata, the page's outgoing links and its robots meta."""
    import trafilatura
    from lxml import html as lxml_html

    page = PageContent(markdown="")
    try:
        tree = lxml_html.fromstring(html)
    except Exception:  # empty or unparsable document: nothing to take from it
        return page
    base = url
    for href in tree.xpath("//base/@href")[:1]:
        base = urljoin(url, href.strip())
    robots = " ".join(
        tree.xpath("//meta[translate(@name,'ROBTS','robts')='robots']/@content")
    ).lower()
    page.noindex = "noindex" in robots or "none" in robots
    page.nofollow = "nofollow" in robots or "none" in robots
    if not page.nofollow:
        for anchor in tree.xpath("//a[@href]"):
            if "nofollow" in (anchor.get("rel") or "").lower():
                continue
            href = anchor.get("href").strip()
            if href and not href.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
                page.links.append(urljoin(base, href))
    page.script_count = len(tree.xpath("//script"))
    for element in tree.xpath("//script|//style|//noscript|//template"):
        element.drop_tree()
    body = tree.find("body")
    page.body_text_chars = len(
        " ".join((body if body is not None else tree).text_content().split())
    )
    language = (tree.get("lang") or tree.get("xml:lang") or "").strip()

    # Markdown with tables, links and emphasis, favouring recall; no comments; the metadata
    # comes from page_metadata below (see its docstring for why not trafilatura's).
    markdown = trafilatura.extract(
        html, url=base, output_format="markdown", include_tables=True, include_links=True,
        include_formatting=True, include_comments=False, favor_recall=True, with_metadata=False,
    )
    page.markdown = _tidy(markdown or "", base)
    page.title, page.metadata = page_metadata(tree, url)
    if language:
        page.metadata["language"] = language
    return page


def page_metadata(tree, url: str) -> tuple[str, dict[str, str]]:
    """Title and content metadata from the page's own tags (<title>, meta, Open Graph, canonical).

    Our own few XPath lookups on the tree we already parsed, not trafilatura.extract_metadata:
    that one re-parses the page and searches it for dates (htmldate), which doubled the time
    per page (bench/scrape.py) and guessed dates from copyright lines.
    """

    def meta(*names: str) -> str:
        for name in names:
            found = tree.xpath(
                f"//meta[translate(@name,'ABCDEFGHIJKLMNOPQRSTUVWXYZ','abcdefghijklmnopqrstuvwxyz')='{name}' "
                f"or @property='{name}' or @itemprop='{name}']/@content"
            )
            for value in found:
                if value.strip():
                    return " ".join(value.split())
        return ""

    title = meta("og:title") or " ".join(" ".join(tree.xpath("//title//text()")).split())
    heading = tree.xpath("//h1")
    heading_text = (
        " ".join(heading[0].text_content().split()).replace(PILCROW, "").strip() if heading else ""
    )
    if not title or (heading_text and title.startswith(heading_text)):
        title = heading_text or title  # "Logging — Flask Documentation" -> "Logging"
    fields = {
        "canonical_url": next(
            (
                urljoin(url, href.strip())
                for href in tree.xpath("//link[@rel='canonical']/@href")
                if href.strip()
            ),
            "",
        ),
        "description": meta("description", "og:description", "twitter:description"),
        "author": meta("author", "article:author", "dc.creator"),
        "date": meta("article:published_time", "datepublished", "date", "dc.date", "dcterms.date"),
        "site_name": meta("og:site_name"),
    }
    return title.replace(PILCROW, "").strip(), {
        key: value for key, value in fields.items() if value
    }


def _tidy(markdown: str, base: str) -> str:
    """Blank line between a code fence and a table; Sphinx's pilcrow permalinks dropped; any
    link trafilatura left relative made absolute."""
    markdown = _CODE_THEN_TABLE.sub("```\n\n|", markdown)
    markdown = _PERMALINK.sub("", markdown)
    markdown = _TRAILING_PILCROW.sub(r"\1", markdown)
    # trafilatura escapes every underscore; inside words (`docs_dir`) CommonMark never reads
    # one as emphasis, and the escaped form splits the name for search (BM25) and readers.
    markdown = _INTRAWORD_UNDERSCORE.sub("_", markdown)

    def absolute(match: re.Match) -> str:
        target = match.group(2)
        if urlsplit(target).scheme or target.startswith("#"):
            return match.group(0)
        return f"{match.group(1)}{urljoin(base, target)}{match.group(3)}"

    return _MARKDOWN_LINK.sub(absolute, markdown).strip()


def page_documents(
    result: FetchResult, *, html: str | None = None, reader_options: dict | None = None
) -> tuple[list[Document], PageContent | None]:
    """The documents of one fetched page (source = its URL), and the parsed HTML when it was HTML.

    `html` replaces the fetched body (a rendered page). PDF bodies go through the knowledge
    readers, like a PDF file would. Returns no documents when the page holds no text.
    """
    url = result.final_url
    options = {**(reader_options or {}), **result.validators()}
    if result.kind == "pdf":
        return _pdf_documents(result, options), None
    if result.kind == "text" and html is None:
        text = result.text().strip()
        title = text.splitlines()[0].lstrip("# ").strip()[:200] if text else ""
        return (
            [Document(text=text, source=url, title=title, reader_options=options)] if text else []
        ), None
    page = parse_html(html if html is not None else result.text(), url)
    if not page.markdown.strip() or page.noindex:
        return [], page
    metadata = dict(page.metadata)
    metadata.setdefault("canonical_url", url)
    document = Document(
        text=page.markdown, source=url, title=page.title, metadata=metadata, reader_options=options
    )
    return [document], page


def _pdf_documents(result: FetchResult, options: dict) -> list[Document]:
    from infuse.knowledge import read_file

    with tempfile.TemporaryDirectory(prefix="infuse-pdf-") as folder:
        path = Path(folder) / "page.pdf"
        path.write_bytes(result.body)
        documents = read_file(path)
    for number, document in enumerate(documents):
        document.source = result.final_url
        document.doc_id = (
            result.final_url if len(documents) == 1 else f"{result.final_url}#{number}"
        )
        document.reader_options = {**document.reader_options, **options}
        document.metadata = {
            key: value for key, value in document.metadata.items() if "path" not in key
        }
    return documents
