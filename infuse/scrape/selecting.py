"""Records without a model: one CSS or XPath selector per field (lxml + cssselect).

A selectors file is JSON: `{"field": "css:h1.title", "price": "xpath://span[@id='p']",
"links": {"css": "a.more", "attr": "href", "all": true}}`. A plain string without a prefix is
CSS. The value is the element's whitespace-collapsed text (or the attribute); `all` gives a
list. The evidence of each field is the text it was read from, so it always occurs in the
page; a selector that matches nothing gives null and a flag.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from infuse.errors import ConfigError
from infuse.scrape.structured import ExtractionResult


def load_selectors(spec: str | Path | dict) -> dict[str, dict[str, Any]]:
    """Selectors from a JSON file or dict, each as {"css"|"xpath": ..., "attr", "all"}; compiled
    once here so a bad selector is a ConfigError naming the field before any page is fetched."""
    from cssselect import SelectorError
    from lxml import etree
    from lxml.cssselect import CSSSelector

    if isinstance(spec, dict):
        raw, where = spec, "selectors"
    else:
        where = str(spec)
        try:
            raw = json.loads(Path(spec).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise ConfigError(f"--selectors {spec}: no such file.") from error
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"--selectors {spec}: not JSON ({error.msg}, line {error.lineno})."
            ) from error
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: expected a JSON object {{field: selector}}.")
    selectors: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        if isinstance(value, str):
            kind, _, expression = (
                value.partition(":") if value.startswith(("css:", "xpath:")) else ("css", "", value)
            )
            value = {kind: expression}
        if not isinstance(value, dict) or not (("css" in value) ^ ("xpath" in value)):
            raise ConfigError(f"{where}: field {name!r} needs one of css or xpath.")
        try:
            if "css" in value:
                compiled = CSSSelector(value["css"])
            else:
                compiled = etree.XPath(value["xpath"])
        except (SelectorError, etree.XPathSyntaxError) as error:
            raise ConfigError(f"{where}: field {name!r}: bad selector ({error}).") from error
        selectors[name] = {**value, "compiled": compiled}
    return selectors


def _text(node: Any, attribute: str | None, base: str) -> str:
    if isinstance(node, str):  # an XPath that selects text() or @attr
        return " ".join(node.split())
    if attribute:
        value = (node.get(attribute) or "").strip()
        return urljoin(base, value) if attribute in ("href", "src") and value else value
    return " ".join(node.text_content().split())


def select_record(html: str, url: str, selectors: dict[str, dict[str, Any]]) -> ExtractionResult:
    """The fields the selectors pick from one page, with the text they came from as evidence."""
    from lxml import html as lxml_html

    result = ExtractionResult(url=url, data={}, attempts=1)
    try:
        tree = lxml_html.fromstring(html)
    except Exception as error:  # empty or unparsable page
        result.error = f"{url}: cannot parse the HTML ({error})"
        result.data = None
        return result
    for name, selector in selectors.items():
        matches = selector["compiled"](tree)
        if not isinstance(matches, list):
            matches = [matches]
        texts = [
            text for text in (_text(node, selector.get("attr"), url) for node in matches) if text
        ]
        if not texts:
            result.data[name] = [] if selector.get("all") else None
            result.flags.append({"field": name, "reason": "selector matched nothing; value null"})
        elif selector.get("all"):
            result.data[name] = texts
            for index, text in enumerate(texts):
                result.evidence[f"{name}[{index}]"] = text
        else:
            result.data[name] = texts[0]
            result.evidence[name] = texts[0]
    return result
