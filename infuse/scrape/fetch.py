"""`Fetcher`: the one HTTP client every web path uses (crawl, sync, extract, render's first try).

Polite: robots.txt is obeyed (Protego), its Crawl-delay is a floor under our own delay, each
host gets one request at a time with a minimum gap that grows with the host's latency and on
429/503 (Retry-After honoured, bounded). Safe: only public addresses unless `allow_private`
(see `safety.py`), bodies are counted *after* decompression (a 1 MB gzip bomb that inflates
to 10 GB stops at `max_bytes`), connect/read/total timeouts, a redirect cap and loop
detection, and binary content types are skipped before their body is read.

Decompression is ours (zlib with an output bound) rather than httpx's decoder because
httpx inflates each network chunk whole: one 64 KB chunk of a bomb is already 64 MB.
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from infuse import __version__
from infuse.closing import Closing
from infuse.scrape.safety import AddressRefused, guarded_transport

USER_AGENT = (
    f"infuse/{__version__} (knowledge crawler; obeys robots.txt; +https://pypi.org/project/infuse/)"
)
ROBOTS_AGENT = "infuse"  # the token robots.txt groups are matched against

HTML_TYPES = {"text/html", "application/xhtml+xml"}
TEXT_TYPES = {"text/plain", "text/markdown", "text/x-markdown"}
PDF_TYPES = {"application/pdf"}
XML_TYPES = {"application/xml", "text/xml"}


@dataclass
class FetchConfig:
    """How politely and how safely pages are fetched. Delays are seconds."""

    user_agent: str = USER_AGENT
    min_delay: float = 1.0  # between two requests to one host
    max_delay: float = 60.0  # the most the adaptive delay grows to
    adapt_to_latency: bool = True  # wait at least as long as the host took to answer
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0  # one response, headers to last byte
    max_bytes: int = 10 * 1024 * 1024  # after decompression
    max_redirects: int = 10
    max_retries: int = 3  # on 429/503 and connection resets
    max_retry_after: float = 120.0  # a longer Retry-After skips the page instead of waiting
    allow_private: bool = False  # every non-public address (an intranet wiki)
    allow_networks: list[str] = field(default_factory=list)  # or just these CIDRs
    obey_robots: bool = True


@dataclass
class FetchResult:
    """One fetched URL: what came back, or why nothing usable did (`skip_reason`)."""

    url: str
    final_url: str
    status: int | None = None
    content_type: str = ""
    kind: str = ""  # "html" | "text" | "pdf" | "" (nothing usable)
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    redirects: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """A 2xx answer with a body we can read."""
        return self.skip_reason is None and self.status is not None and 200 <= self.status < 300

    @property
    def not_modified(self) -> bool:
        """The server answered 304 to a conditional request."""
        return self.status == 304

    @property
    def charset(self) -> str | None:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip("\"'")
        return None

    def text(self) -> str:
        """The body decoded: the header's charset, else the page's <meta charset>, else UTF-8
        (undecodable bytes replaced)."""
        declared = self.charset
        if not declared and self.kind == "html":
            match = _META_CHARSET.search(self.body[:4096])
            declared = match.group(1).decode("ascii", "ignore") if match else None
        for encoding in (declared, "utf-8"):
            if encoding:
                try:
                    return self.body.decode(encoding)
                except (LookupError, UnicodeDecodeError):
                    continue
        return self.body.decode("utf-8", errors="replace")

    def validators(self) -> dict[str, str]:
        """ETag and Last-Modified, for the next conditional request."""
        found = {
            "etag": self.headers.get("etag"),
            "last_modified": self.headers.get("last-modified"),
        }
        return {key: value for key, value in found.items() if value}


_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.I)


class _Skip(Exception):
    """Internal: stop fetching this URL for the reason given."""


def content_kind(
    content_type: str, head: bytes = b"", *, xml: bool = False
) -> tuple[str, str | None]:
    """("html"|"text"|"pdf", None) for content we read, or ("", reason) for the rest.
    With `xml`, XML (a sitemap) is read too, as "xml"."""
    mime = content_type.split(";")[0].strip().lower()
    if xml and (mime in XML_TYPES or head.lstrip().startswith(b"<?xml")):
        return "xml", None
    if not mime or mime == "application/octet-stream":
        sniff = head[:512].lstrip().lower()
        if sniff.startswith(b"%pdf"):
            return "pdf", None
        if sniff.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
            return "html", None
        if head and b"\x00" not in head[:1024]:
            try:
                head[:1024].decode("utf-8")
                return "text", None
            except UnicodeDecodeError:
                pass
        return "", f"binary content ({mime or 'no content type'}); only HTML, text and PDF are read"
    if mime in HTML_TYPES:
        return "html", None
    if mime in TEXT_TYPES:
        return "text", None
    if mime in PDF_TYPES:
        return "pdf", None
    return "", f"content type {mime} is not HTML, text or PDF"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class _Host:
    """Per-host politeness state: a lock (one request at a time) and when the next may start."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_at = 0.0
        self.delay = 0.0  # current adaptive delay (grows on 429/503)
        self.crawl_delay = 0.0  # robots.txt floor


class Fetcher(Closing):
    """Fetch URLs politely and safely. Safe to share between threads; use as a context manager.

    `sleep` and `clock` are injectable so tests can check waits without waiting.
    """

    def __init__(
        self,
        config: FetchConfig | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        import httpx

        self.config = config or FetchConfig()
        self.sleep = sleep
        self.clock = clock
        self.client = httpx.Client(
            transport=guarded_transport(
                allow_private=self.config.allow_private,
                allow_networks=tuple(self.config.allow_networks),
            ),
            follow_redirects=False,
            timeout=httpx.Timeout(
                connect=self.config.connect_timeout,
                read=self.config.read_timeout,
                write=self.config.read_timeout,
                pool=self.config.total_timeout,
            ),
            headers={
                "User-Agent": self.config.user_agent,
                "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,application/pdf;q=0.8,*/*;q=0.1",
                "Accept-Encoding": "gzip, deflate",
            },
        )
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()
        self._robots: dict[str, Any] = {}  # origin -> Protego | None (allow all) | str (reason)
        self._robots_lock = threading.Lock()
        self.requests_made = 0

    def close(self) -> None:
        self.client.close()

    # robots.txt --------------------------------------------------------------------------
    def robots(self, url: str):
        """The parsed robots.txt of `url`'s origin (Protego), None when there is none, or a
        string saying why the whole origin is off limits (robots.txt answered 5xx)."""
        origin = origin_of(url)
        with self._robots_lock:
            if origin in self._robots:
                return self._robots[origin]
        from protego import Protego

        result = self._get(origin + "/robots.txt", conditional={}, check_robots=False)
        if result.status is not None and 200 <= result.status < 300 and result.kind != "pdf":
            parsed: Any = Protego.parse(result.text())
            delay = parsed.crawl_delay(ROBOTS_AGENT)
            if delay:
                self._host(url).crawl_delay = float(delay)
        elif result.status is not None and 400 <= result.status < 500:
            parsed = None  # RFC 9309: no robots.txt, everything allowed
        elif result.status is None and result.skip_reason and "refused" in result.skip_reason:
            parsed = result.skip_reason
        else:
            why = f"status {result.status}" if result.status else result.skip_reason
            parsed = (
                f"robots.txt of {origin} could not be read ({why}); RFC 9309 says crawl nothing"
            )
        with self._robots_lock:
            self._robots[origin] = parsed
        return parsed

    def disallowed(self, url: str) -> str | None:
        """Why robots.txt forbids `url`, or None when it may be fetched."""
        if not self.config.obey_robots:
            return None
        rules = self.robots(url)
        if isinstance(rules, str):
            return rules
        if rules is not None and not rules.can_fetch(url, ROBOTS_AGENT):
            return f"robots.txt of {origin_of(url)} disallows {urlsplit(url).path or '/'}"
        return None

    def sitemaps(self, url: str) -> list[str]:
        """Sitemap URLs that the origin's robots.txt lists."""
        rules = self.robots(url)
        return list(rules.sitemaps) if rules is not None and not isinstance(rules, str) else []

    # fetching ----------------------------------------------------------------------------
    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        xml: bool = False,
    ) -> FetchResult:
        """GET `url` following redirects (each hop checked against robots.txt and the address
        guard). With `etag`/`last_modified` the request is conditional (304 -> `not_modified`).
        `xml=True` also accepts XML bodies (sitemaps), as kind "xml"."""
        conditional = {}
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        return self._get(url, conditional=conditional, check_robots=True, xml=xml)

    def _get(
        self, url: str, *, conditional: dict[str, str], check_robots: bool, xml: bool = False
    ) -> FetchResult:
        result = FetchResult(url=url, final_url=url)
        started = self.clock()
        seen = {url}
        current = url
        try:
            for _hop in range(self.config.max_redirects + 1):
                if urlsplit(current).scheme not in ("http", "https"):
                    raise _Skip(f"redirected to {current}, which is not http(s)")
                if check_robots:
                    reason = self.disallowed(current)
                    if reason:
                        raise _Skip(reason)
                status, headers = self._request(current, conditional, result, xml)
                result.status, result.headers, result.final_url = status, headers, current
                location = headers.get("location")
                if status in (301, 302, 303, 307, 308) and location:
                    target = urljoin(current, location.strip())
                    if target in seen:
                        raise _Skip(
                            f"redirect loop: {' -> '.join([*result.redirects, current, target])}"
                        )
                    seen.add(target)
                    result.redirects.append(current)
                    current = target
                    continue
                break
            else:
                raise _Skip(f"more than {self.config.max_redirects} redirects")
            if result.status is not None and (result.status >= 400 or result.status == 304):
                if result.status >= 400:
                    result.skip_reason = f"HTTP {result.status}"
            elif result.status is not None and not 200 <= result.status < 300:
                result.skip_reason = f"HTTP {result.status} without a usable redirect"
        except _Skip as skip:
            result.skip_reason = str(skip)
        except AddressRefused as refused:
            result.skip_reason = str(refused)
        result.elapsed_s = self.clock() - started
        return result

    def _host(self, url: str) -> _Host:
        key = urlsplit(url).netloc.lower()
        with self._hosts_lock:
            return self._hosts.setdefault(key, _Host())

    def _request(
        self, url: str, conditional: dict[str, str], result: FetchResult, xml: bool = False
    ) -> tuple[int, dict[str, str]]:
        """One URL, no redirects: retries 429/503 and resets; fills result's body and kind."""
        import httpx

        host = self._host(url)
        config = self.config
        for attempt in range(config.max_retries + 1):
            with host.lock:
                wait = host.next_at - self.clock()
                if wait > 0:
                    self.sleep(wait)
                began = self.clock()
                retry_wait: float | None = None
                try:
                    status, headers = self._read(url, conditional, result, xml)
                except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as error:
                    # A name that does not resolve will not resolve in a second either; a reset
                    # or refused connection gets one more try.
                    if attempt >= 1 or "cannot resolve" in str(error):
                        raise _Skip(f"cannot connect: {error}") from error
                    status, headers = 0, {}
                    retry_wait = max(config.min_delay, 1.0)
                except httpx.TimeoutException as error:
                    raise _Skip(
                        f"timed out ({type(error).__name__}; read timeout {config.read_timeout:g}s)"
                    ) from error
                finally:
                    self.requests_made += 1
                latency = self.clock() - began
                base = max(config.min_delay, host.crawl_delay, host.delay)
                if config.adapt_to_latency:
                    base = max(base, min(latency, config.max_delay))
                if status in (429, 503):
                    asked = retry_after_seconds(headers.get("retry-after"))
                    if asked is not None and asked > config.max_retry_after:
                        host.next_at = self.clock() + base
                        raise _Skip(
                            f"HTTP {status}: the server asked to wait {asked:.0f}s (Retry-After), "
                            f"more than max_retry_after={config.max_retry_after:g}s"
                        )
                    host.delay = min(config.max_delay, max(host.delay * 2, config.min_delay, 1.0))
                    retry_wait = max(asked if asked is not None else host.delay, base)
                    if attempt == config.max_retries:
                        host.next_at = self.clock() + retry_wait
                        return status, headers
                if retry_wait is None:
                    host.next_at = self.clock() + base
                    return status, headers
                host.next_at = self.clock() + retry_wait
        raise AssertionError("unreachable")

    def _read(
        self, url: str, conditional: dict[str, str], result: FetchResult, xml: bool
    ) -> tuple[int, dict[str, str]]:
        config = self.config
        deadline = self.clock() + config.total_timeout
        with self.client.stream("GET", url, headers=conditional) as response:
            headers = {key.lower(): value for key, value in response.headers.items()}
            status = result.status = response.status_code
            result.content_type = headers.get("content-type", "")
            if status in (301, 302, 303, 307, 308, 304, 429, 503) or status >= 400:
                return status, headers
            declared = headers.get("content-length", "")
            encoding = headers.get("content-encoding", "identity").strip().lower()
            if (
                encoding in ("", "identity")
                and declared.isdigit()
                and int(declared) > config.max_bytes
            ):
                raise _Skip(
                    f"body of {int(declared)} bytes is larger than max_bytes={config.max_bytes}"
                )
            kind, reason = content_kind(result.content_type, xml=xml)
            mime = result.content_type.split(";")[0].strip().lower()
            if reason and mime and mime != "application/octet-stream":
                raise _Skip(reason)  # decided from the header: the body is never downloaded
            decoder = _decoder(encoding, url)
            body = bytearray()
            for raw in response.iter_raw():
                if self.clock() > deadline:
                    raise _Skip(f"took longer than total_timeout={config.total_timeout:g}s")
                chunk = raw
                while chunk:
                    room = config.max_bytes - len(body) + 1
                    if decoder is None:
                        out, chunk = chunk[:room], chunk[room:]
                    else:
                        out = decoder.decompress(chunk, room)
                        chunk = decoder.unconsumed_tail
                    body += out
                    if len(body) > config.max_bytes:
                        raise _Skip(
                            f"body larger than max_bytes={config.max_bytes} "
                            f"(counted after decompression{', ' + encoding if decoder else ''})"
                        )
                    if decoder is not None and not out:
                        break
            if not kind:
                kind, reason = content_kind(result.content_type, bytes(body[:2048]), xml=xml)
                if reason:
                    raise _Skip(reason)
            result.kind, result.body = kind, bytes(body)
            return status, headers


def _decoder(encoding: str, url: str):
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(47)  # 32 + 15: gzip or zlib header, detected
    raise _Skip(f"content encoding {encoding!r} is not supported (asked for gzip or deflate)")
