"""Which URLs a crawl may visit (scope) and when two URLs are the same page (canonical form)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from infuse.errors import ConfigError

SCOPES = ("host", "domain", "prefix")
# Query parameters that only track the visitor; the page is the same without them.
_TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "_ga")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """One spelling per page: lower-case scheme and host, no default port, no fragment,
    no tracking parameters, sorted query, an empty path as `/`."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = sorted(
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not key.lower().startswith(_TRACKING)
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def _registered_domain(host: str) -> str:
    # Without the public-suffix list this is a heuristic: drop a leading "www." only, so
    # `docs.example.com` and `www.docs.example.com` share a scope of `docs.example.com` and
    # `domain` scope means "this host and every host under it".
    return host[4:] if host.startswith("www.") else host


@dataclass
class Scope:
    """The part of the web one crawl stays in.

    `mode`: "host" (the start URLs' hosts), "domain" (those hosts and their subdomains),
    "prefix" (URLs starting with a start URL up to its last `/`). `include`/`exclude` are
    shell globs on the whole URL; an URL must match one include (when given) and no exclude.
    """

    start_urls: list[str]
    mode: str = "host"
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mode not in SCOPES:
            raise ConfigError(f"--scope {self.mode!r}: expected one of {', '.join(SCOPES)}.")
        for url in self.start_urls:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ConfigError(f"{url!r} is not an http(s) URL; give it as https://host/path.")
        self._hosts = {(urlsplit(url).hostname or "").lower() for url in self.start_urls}
        self._domains = {_registered_domain(host) for host in self._hosts}
        self._prefixes = [canonical_url(url).rsplit("/", 1)[0] + "/" for url in self.start_urls]

    def reason_out(self, url: str) -> str | None:
        """Why `url` is outside the scope, or None when it is inside."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return f"not http(s): {url}"
        host = (parts.hostname or "").lower()
        if self.mode == "host" and host not in self._hosts:
            return f"other host {host} (scope host: {', '.join(sorted(self._hosts))})"
        if self.mode == "domain" and not any(
            host == domain or host.endswith("." + domain) for domain in self._domains
        ):
            return f"other domain {host} (scope domain: {', '.join(sorted(self._domains))})"
        if self.mode == "prefix":
            canonical = canonical_url(url)
            if not any(canonical.startswith(prefix) for prefix in self._prefixes):
                return f"outside the prefix {' or '.join(self._prefixes)}"
        if self.include and not any(fnmatch.fnmatchcase(url, glob) for glob in self.include):
            return f"matches no --include ({', '.join(self.include)})"
        for glob in self.exclude:
            if fnmatch.fnmatchcase(url, glob):
                return f"matches --exclude {glob}"
        return None

    def to_dict(self) -> dict:
        return {
            "start_urls": self.start_urls,
            "mode": self.mode,
            "include": self.include,
            "exclude": self.exclude,
        }
