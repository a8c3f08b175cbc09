"""Which network addresses the crawler may reach: public ones only, unless the user opts in.

A crawler that follows links and redirects can be steered at the machine it runs on
(`http://127.0.0.1:8080/admin`), the LAN, or a cloud metadata service (169.254.169.254).
So every connection is checked on the address the host name *resolved to*, at the moment
of connecting (not only the first URL: every redirect hop and every request a rendered
page makes), which also defeats DNS names that point at private addresses.

`GuardedBackend` is the httpcore network backend that does the check; `guarded_transport`
builds the httpx transport around it. Connecting to the checked IP (instead of letting the
socket layer resolve the name again) closes the gap a second, different DNS answer would open.
TLS still verifies the host name: httpcore passes it as `server_hostname` on `start_tls`.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Any

# Ranges that `ipaddress` does not call private but that are not the public internet.
_EXTRA_BLOCKED = [
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT (RFC 6598)
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
]


class AddressRefused(Exception):
    """A host resolved to an address the crawler refuses (loopback, private, ...)."""


def address_kind(address: str) -> str | None:
    """Why `address` is not a public one ("loopback", "private", ...), or None if it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if any(ip in network for network in _EXTRA_BLOCKED if network.version == ip.version):
        return "carrier-grade NAT" if ip in _EXTRA_BLOCKED[0] else "reserved"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "unique-local"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IP literals resolve to themselves)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise OSError(f"cannot resolve host {host!r}: {error.strerror}") from error
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_host(
    host: str, port: int, *, allow_private: bool, allow_networks: tuple[str, ...] = ()
) -> list[str]:
    """Resolve `host` and return its addresses; raise AddressRefused if any is not public.

    `allow_networks` (CIDRs or addresses, e.g. "10.0.0.0/8") opens just those non-public
    ranges; `allow_private` opens all. All addresses are checked (not only the first): a name
    with one public and one private address could otherwise be steered at the private one.
    """
    addresses = resolve(host, port)
    if allow_private:
        return addresses
    networks = [ipaddress.ip_network(network, strict=False) for network in allow_networks]
    for address in addresses:
        kind = address_kind(address)
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if kind and any(ip.version == net.version and ip in net for net in networks):
            continue
        if kind:
            raise AddressRefused(
                f"{host} resolves to {address}, a {kind} address; refused "
                "(pass --allow-private, or --allow-network CIDR, to crawl your own network)"
            )
    return addresses


class GuardedBackend:
    """An httpcore network backend that checks the resolved address before every connection."""

    def __init__(self, *, allow_private: bool, allow_networks: tuple[str, ...] = ()):
        import httpcore

        self.allow_private = allow_private
        self.allow_networks = tuple(allow_networks)
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ):
        import httpcore

        try:
            addresses = check_host(
                host, port, allow_private=self.allow_private, allow_networks=self.allow_networks
            )
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from error
        last_error: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as error:
                last_error = error
        raise last_error or httpcore.ConnectError(f"cannot connect to {host}:{port}")

    def connect_unix_socket(self, *args: Any, **kwargs: Any):
        raise AddressRefused("unix sockets are not crawled")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


@functools.lru_cache(maxsize=2)
def _ssl_context(verify: bool):
    """One SSL context per setting: loading the CA bundle takes ~0.5 s; the context is shareable."""
    import httpx

    return httpx.create_ssl_context(verify=verify, trust_env=False)


def guarded_transport(
    *, allow_private: bool, allow_networks: tuple[str, ...] = (), verify: bool = True
):
    """An httpx transport whose every connection goes through `GuardedBackend`.

    Proxies from the environment are ignored on purpose: a proxy would connect for us and
    the address check would see only the proxy.
    """
    import httpcore
    import httpx

    class _GuardedTransport(httpx.HTTPTransport):
        # HTTPTransport's request/close methods only use `self._pool`; its __init__ would
        # build a second pool (and load the CA bundle again), so it is not called.
        def __init__(self) -> None:
            self._pool = httpcore.ConnectionPool(
                ssl_context=_ssl_context(verify),
                max_connections=20,
                max_keepalive_connections=10,
                keepalive_expiry=5.0,
                network_backend=GuardedBackend(
                    allow_private=allow_private, allow_networks=allow_networks
                ),
            )

    return _GuardedTransport()
