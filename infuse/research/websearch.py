"""Web search backends for research: SearxNG (any instance's JSON API), Brave, Tavily, Exa.

    web_search("searxng:http://127.0.0.1:8888") -> WebSearch   (.search(query, n) -> [SearchResult])
    web_search("brave") / ("tavily") / ("exa")                 key from BRAVE_API_KEY / TAVILY_API_KEY / EXA_API_KEY
    web_search("none") -> None                                 knowledge base only

Each is one JSON request over httpx; the pages found are read later through the crawler's
`Fetcher` (robots.txt, address guard), not here. No search SDKs: each API is one call.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from infuse.errors import ConfigError, InfuseError

BACKENDS = ("searxng", "brave", "tavily", "exa", "none")
KEY_VARIABLES = {"brave": "BRAVE_API_KEY", "tavily": "TAVILY_API_KEY", "exa": "EXA_API_KEY"}


class SearchError(InfuseError):
    """A search engine did not answer usefully (named, with its status)."""


@dataclass
class SearchResult:
    url: str
    title: str = ""
    snippet: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WebSearch:
    """One search backend. `search(query, n)` returns up to n results (http/https URLs only)."""

    def __init__(self, kind: str, *, url: str | None = None, api_key: str | None = None,
                 timeout: float = 20.0) -> None:
        self.kind, self.url, self.api_key, self.timeout = kind, url, api_key, timeout

    @property
    def name(self) -> str:
        return f"searxng:{self.url}" if self.kind == "searxng" else self.kind

    def search(self, query: str, n: int = 5) -> list[SearchResult]:
        import httpx

        try:
            if self.kind == "searxng":
                response = httpx.get(
                    self.url.rstrip("/") + "/search",
                    params={"q": query, "format": "json"},
                    timeout=self.timeout,
                )
                rows = _json(response, self.name).get("results", [])
                found = [(r.get("url"), r.get("title"), r.get("content")) for r in rows]
            elif self.kind == "brave":
                response = httpx.get(
                    "https://api.search.brave.com/res/v1/web/search",
                    params={"q": query, "count": n},
                    headers={"X-Subscription-Token": self.api_key, "Accept": "application/json"},
                    timeout=self.timeout,
                )
                rows = _json(response, self.name).get("web", {}).get("results", [])
                found = [(r.get("url"), r.get("title"), r.get("description")) for r in rows]
            elif self.kind == "tavily":
                response = httpx.post(
                    "https://api.tavily.com/search",
                    json={"query": query, "max_results": n},
                    headers={"Authorization": f"Bearer {self.api_key}"},
                    timeout=self.timeout,
                )
                rows = _json(response, self.name).get("results", [])
                found = [(r.get("url"), r.get("title"), r.get("content")) for r in rows]
            else:  # exa
                response = httpx.post(
                    "https://api.exa.ai/search",
                    json={"query": query, "numResults": n},
                    headers={"x-api-key": self.api_key},
                    timeout=self.timeout,
                )
                rows = _json(response, self.name).get("results", [])
                found = [(r.get("url"), r.get("title"), r.get("text")) for r in rows]
        except httpx.HTTPError as error:
            raise SearchError(f"search {self.name}: {error}") from None
        results = []
        for url, title, snippet in found:
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                results.append(SearchResult(url, str(title or ""), str(snippet or "")))
        return results[:n]


def _json(response: Any, name: str) -> dict:
    if response.status_code != 200:
        raise SearchError(f"search {name}: status {response.status_code}: {response.text[:200]}")
    try:
        data = response.json()
    except ValueError:
        raise SearchError(
            f"search {name}: the answer is not JSON (SearxNG needs `json` in search.formats)"
        ) from None
    if not isinstance(data, dict):
        raise SearchError(f"search {name}: expected a JSON object")
    return data


def web_search(spec: str | None) -> WebSearch | None:
    """The backend named by `spec` (see module docstring); None for "none" or None.

    Raises ConfigError for an unknown name or a missing API key (naming the variable)."""
    if spec is None or spec == "none":
        return None
    kind, _, rest = spec.partition(":")
    if kind == "searxng":
        if not rest.startswith(("http://", "https://")):
            raise ConfigError(
                f"--search {spec}: give the SearxNG instance as searxng:http://HOST:PORT"
            )
        return WebSearch("searxng", url=rest)
    if kind in KEY_VARIABLES:
        key = rest or os.environ.get(KEY_VARIABLES[kind])
        if not key:
            raise ConfigError(
                f"--search {kind}: set {KEY_VARIABLES[kind]} to your API key (or choose "
                "searxng:URL or none)"
            )
        return WebSearch(kind, api_key=key)
    raise ConfigError(f"--search {spec}: choose one of searxng:URL, brave, tavily, exa, none")
