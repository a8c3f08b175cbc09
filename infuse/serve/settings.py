"""`ServeSettings`: everything `infuse serve` is started with, validated once before anything loads.

Safety rules checked here: a server reachable from other machines (any host but loopback) must
have a bearer token; the token file must hold one non-empty line.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from infuse.errors import ConfigError
from infuse.models import DEFAULT_MODEL
from infuse.serve.guard import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TOTAL_BYTES,
    AddGuard,
)

LOOPBACK_NAMES = ("localhost",)
DEFAULT_QUEUE_SIZE = 8


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token_file(path: Path) -> str:
    """The bearer token in `path` (first line, stripped); ConfigError when missing or empty."""
    try:
        token = path.read_text(encoding="utf-8").strip().splitlines()
    except OSError as error:
        raise ConfigError(f"Cannot read token file {path}: {error.strerror or error}.") from error
    if not token or not token[0].strip():
        raise ConfigError(f"Token file {path} is empty; put one secret token on its first line.")
    return token[0].strip()


@dataclass
class ServeSettings:
    """How to serve: where the knowledge and runs are, how to listen, what clients may do."""

    kb: str | None = None
    runs: Path | None = None
    profile: Path | None = None
    cag_cache: Path | None = None
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    allowed_hosts: list[str] = field(default_factory=list)
    allowed_roots: list[Path] = field(default_factory=list)
    read_only: bool = False
    allow_private: bool = False  # adding web pages may reach loopback/private addresses (an intranet)
    persona: str | None = None
    max_new_tokens: int = 256
    grounded: bool = True  # RAG checks answers against its passages and declines without evidence
    queue_size: int = DEFAULT_QUEUE_SIZE
    methods: list[str] | None = None  # None: every method that can run here
    search: str | None = None  # the research tool's web search (searxng:URL, brave, ...; None: kb only)
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES

    def validate(self) -> ServeSettings:
        """Raise ConfigError for a setting that cannot work (before any model loads)."""
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"Refusing to listen on {self.host} without a token: anyone who can reach it could "
                "read and change the knowledge base. Pass --token-file FILE (one secret line), or "
                "listen on 127.0.0.1."
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port} is not a TCP port (0-65535).")
        if self.queue_size < 1:
            raise ConfigError(f"--queue-size must be at least 1, not {self.queue_size}.")
        for root in self.allowed_roots:
            if not Path(root).expanduser().is_dir():
                raise ConfigError(f"--allow-root {root} is not a folder.")
        return self

    def guard(self) -> AddGuard:
        """The add-file policy these settings describe."""
        return AddGuard(
            roots=list(self.allowed_roots),
            max_file_bytes=self.max_file_bytes,
            max_request_bytes=self.max_request_bytes,
            max_total_bytes=self.max_total_bytes,
        )

    def transport_security(self):
        """The MCP SDK's Host/Origin check: loopback names, the bind host, and --allowed-host."""
        from mcp.server.transport_security import TransportSecuritySettings

        hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
        extra = list(self.allowed_hosts)
        if not is_loopback(self.host) and self.host not in ("0.0.0.0", "::"):
            extra.append(self.host)
        for name in extra:
            hosts += [name, f"{name}:*"]
            origins += [f"http://{name}", f"https://{name}", f"http://{name}:*", f"https://{name}:*"]
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
        )
