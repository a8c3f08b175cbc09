"""A small real website on 127.0.0.1 for the crawler tests (http.server in a thread).

Pages are a mutable dict, so a test can change or delete a page between two crawls.
Every request is logged (path, headers) so tests can assert what the crawler asked for.
"""

from __future__ import annotations

import functools
import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Response:
    body: bytes | str = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    etag: str | None = None


def article(title: str, paragraphs: list[str], links: list[str] = (), extra: str = "") -> str:
    nav = "".join(f'<a href="{link}">{link}</a> ' for link in links)
    body = "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
    return (
        f'<!doctype html><html lang="en"><head><title>{title}</title>'
        f'<meta name="description" content="About {title}"></head>'
        f"<body><nav>{nav}</nav><main><article><h1>{title}</h1>{body}{extra}</article></main>"
        "<footer>Footer boilerplate, all rights reserved.</footer></body></html>"
    )


FILLER = (
    "This paragraph is long enough for a main-content extractor to keep it, because it talks "
    "at some length about the subject of the page in plain sentences."
)


class Site:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.pages: dict[str, Response] = {}
        self.log: list[tuple[str, dict[str, str]]] = []
        self.hits: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0  # most requests the server was answering at once
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base + path

    def paths(self) -> list[str]:
        return [path for path, _headers in self.log]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK wait between header and body

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                with site._lock:
                    site.in_flight += 1
                    site.max_in_flight = max(site.max_in_flight, site.in_flight)
                try:
                    self._answer()
                finally:
                    with site._lock:
                        site.in_flight -= 1

            def _answer(self) -> None:
                path = self.path
                site.log.append((path, {k.lower(): v for k, v in self.headers.items()}))
                site.hits[path] = site.hits.get(path, 0) + 1
                page = site.pages.get(path)
                if callable(page):
                    page = page(site.hits[path], self.headers)
                if page is None:
                    page = Response("not found", status=404, content_type="text/plain")
                if page.delay_s:
                    time.sleep(page.delay_s)
                if page.etag and self.headers.get("If-None-Match") == page.etag:
                    self.send_response(304)
                    self.send_header("ETag", page.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = page.body.encode("utf-8") if isinstance(page.body, str) else page.body
                self.send_response(page.status)
                if page.content_type:
                    self.send_header("Content-Type", page.content_type)
                if page.etag:
                    self.send_header("ETag", page.etag)
                for key, value in page.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


@functools.lru_cache(maxsize=2)
def gzip_bomb(size: int) -> bytes:
    """`size` bytes of HTML-ish zeros, gzip-compressed (about 1000:1)."""
    return gzip.compress(b"<html><body>" + b"0" * size, compresslevel=6)
