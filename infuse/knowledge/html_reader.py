"""HTML -> Markdown-like text that keeps every visible word once.

Headings become `#` lines, lists `-`/`1.` items (nested ones indented), definition lists
`term` / `: definition` pairs (man pages put option names in `<dt>`), tables `| a | b |` rows,
`<pre>` fenced code; text in any other element (`<div>`, `<span>`, custom tags) is kept as
paragraphs. Scripts, styles, navigation (`<nav>`, or marked as such: `_is_navigation`),
footers, forms and hidden elements are dropped.

Written on BeautifulSoup rather than an HTML-to-Markdown library because what retrieval needs
differs from what those produce: no link targets or emphasis marks, no escaped `_`/`*` (option
names must stay searchable as typed), and each text node exactly once. The walk is iterative,
so deeply nested pages cannot overflow the stack.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

_DROP = {
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "canvas",
    "nav",
    "footer",
    "form",
    "button",
    "select",
    "textarea",
    "iframe",
    "object",
    "embed",
    "head",
    "title",
    "meta",
    "link",
}
_BLOCK = {
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "center",
    "details",
    "dialog",
    "div",
    "fieldset",
    "figcaption",
    "figure",
    "header",
    "hgroup",
    "hr",
    "html",
    "main",
    "menu",
    "p",
    "section",
    "summary",
    "caption",
    "legend",
    "option",
    "noframes",
    "frameset",
    "frame",
}
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_SPACE = re.compile(r"[ \t\r\n\f\v\u00a0]+")
_NAVIGATION_ROLES = {"navigation", "banner", "contentinfo", "search"}
_NAVIGATION_CLASSES = {
    "nav", "navbar", "navheader", "navfooter", "navigation", "breadcrumb", "breadcrumbs",
    "related", "sphinxsidebar", "skip-link", "skiplink", "pagination", "site-header", "site-footer",
}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


@dataclass
class _Collector:
    """Text gathered for one element: finished blocks and the paragraph being filled."""

    kind: str
    blocks: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    terms: list[tuple[str, str]] = field(default_factory=list)  # dl: ("dt"|"dd", text)

    def flush(self) -> None:
        if not self.words:
            return
        lines = [_SPACE.sub(" ", line).strip() for line in "".join(self.words).split("\n")]
        text = "\n".join(line for line in lines if line)
        if text:
            self.blocks.append(text)
        self.words.clear()

    def finish(self, separator: str = "\n\n") -> str:
        self.flush()
        return separator.join(self.blocks)


def _is_hidden(tag) -> bool:
    attrs = tag.attrs or {}
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    return bool(_HIDDEN_STYLE.search(str(attrs.get("style", ""))))


def _is_navigation(tag) -> bool:
    """Navigation written without <nav>: a `role`, a class the doc generators give it (DocBook
    `navheader`/`navfooter` and `table.nav`, Sphinx `related`/`sphinxsidebar`, breadcrumbs), or
    DocBook's `summary="Navigation header"` on a table. "<< 9. Massif | Up | 11. Lackey >>" in
    every chunk would match every question about those tools."""
    attrs = tag.attrs or {}
    if str(attrs.get("role", "")).lower() in _NAVIGATION_ROLES:
        return True
    classes = attrs.get("class") or []
    if isinstance(classes, str):
        classes = classes.split()
    if any(name.lower() in _NAVIGATION_CLASSES for name in classes):
        return True
    return str(attrs.get("summary", "")).lower().startswith("navigation")


def _inline(tag) -> str:
    return _SPACE.sub(" ", tag.get_text(" ")).strip()


def _table_rows(table) -> list[str]:
    rows = []
    for row in table.find_all("tr"):
        if row.find_parent("table") is not table:
            continue
        cells = [
            _inline(cell).replace("|", "\\|")
            for cell in row.find_all(["td", "th"])
            if cell.find_parent("tr") is row
        ]
        if any(cells):
            rows.append("| " + " | ".join(cells) + " |")
    return rows


def _indent(text: str, first: str) -> str:
    lines = text.split("\n")
    pad = " " * len(first)
    return "\n".join([first + lines[0], *(pad + line if line else line for line in lines[1:])])


def html_to_text(markup: str | bytes) -> tuple[str, str]:
    """HTML (text or bytes; bytes honour the page's declared charset) -> (title, text)."""
    from bs4 import BeautifulSoup, Comment, Declaration, Doctype, NavigableString
    from bs4.element import ProcessingInstruction, Tag

    with warnings.catch_warnings():  # e.g. XHTML "parsed as HTML": that is what we want
        warnings.simplefilter("ignore")
        try:
            soup = BeautifulSoup(markup, "lxml")
        except Exception:  # lxml missing or refusing the input: the stdlib parser takes anything
            soup = BeautifulSoup(markup, "html.parser")
    title_tag = soup.find("title")
    title = _inline(title_tag) if title_tag else ""
    main = soup.find("main")
    root = main if main is not None and _inline(main) else soup.body or soup
    skipped_strings = (Comment, Declaration, Doctype, ProcessingInstruction)

    stack: list[_Collector] = [_Collector("root")]
    work: list[tuple[object, bool]] = [(root, False)]
    while work:
        node, leaving = work.pop()
        if isinstance(node, NavigableString):
            if not isinstance(node, skipped_strings):
                stack[-1].words.append(_SPACE.sub(" ", str(node)))  # "\n" only from <br>
            continue
        if not isinstance(node, Tag):
            continue
        name = (node.name or "").lower()
        if leaving:
            _leave(name, node, stack)
            continue
        if name in _DROP or _is_hidden(node) or _is_navigation(node):
            continue
        current = stack[-1]
        if name in _HEADINGS:
            current.flush()
            text = _inline(node)
            if text:
                current.blocks.append("#" * _HEADINGS[name] + " " + text)
            continue
        if name == "pre":
            current.flush()
            code = node.get_text().strip("\n")
            if code.strip():
                current.blocks.append(f"```\n{code}\n```")
            continue
        if name == "table":
            current.flush()
            rows = _table_rows(node)
            if rows:
                current.blocks.append("\n".join(rows))
            continue
        if name == "br":
            current.words.append("\n")
            continue
        if name in {"ul", "ol", "dl", "li", "dt", "dd"}:
            current.flush()
            stack.append(_Collector(name))
        elif name in _BLOCK:
            current.flush()
        work.append((node, True))
        work.extend((child, False) for child in reversed(node.contents))
    return title, stack[0].finish()


def _leave(name: str, node, stack: list[_Collector]) -> None:
    """Close an element: finish its collector and hand the text to the enclosing one."""
    if name not in {"ul", "ol", "dl", "li", "dt", "dd"}:
        if name in _BLOCK:
            stack[-1].flush()
        return
    done = stack.pop()
    parent = stack[-1]
    parent.flush()
    if name in {"ul", "ol"}:
        text = done.finish("\n")
    elif name == "li":
        body = done.finish("\n")
        if not body:
            return
        marker = "- "
        if parent.kind == "ol":
            marker = f"{sum(1 for _ in parent.blocks) + 1}. "
        parent.blocks.append(_indent(body, marker))
        return
    elif name in {"dt", "dd"}:
        body = done.finish("\n")
        if body:
            target = parent.terms if parent.kind == "dl" else None
            if target is not None:
                target.append((name, body))
            else:  # a stray dt/dd outside a dl: an ordinary paragraph
                parent.blocks.append(body if name == "dt" else _indent(body, ": "))
        return
    else:  # dl: term lines, each definition right below its term(s); a blank line per group
        done.flush()
        groups: list[list[str]] = []
        previous = "dd"
        for kind, body in done.terms:
            if kind == "dt" and previous == "dd":
                groups.append([])
            if not groups:
                groups.append([])
            groups[-1].append(" ".join(body.split("\n")) if kind == "dt" else _indent(body, ": "))
            previous = kind
        text = "\n\n".join("\n".join(group) for group in groups)
        if done.blocks:
            text = "\n\n".join([text, *done.blocks]) if text else "\n\n".join(done.blocks)
    if text:
        parent.blocks.append(text)
