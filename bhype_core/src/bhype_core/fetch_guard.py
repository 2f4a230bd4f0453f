"""Where the root worker may fetch from: global addresses only, unless an allow-list says more.

``iso.fetch`` lets an operator make the root worker open a URL (issue 11). Left alone that
reaches loopback services, the cloud metadata address (169.254.169.254), the LAN behind the
host and whatever a DNS name points at. :func:`guarded_opener` builds a ``urllib`` opener that

* resolves each host name once, refuses it unless **every** address it resolves to is global
  (not loopback, link-local, private, shared, multicast, unspecified, reserved or documentation:
  :func:`address_refusal`) or inside a configured allow-list network, and connects to exactly
  the addresses it checked, so a DNS answer cannot change between the check and the connect
  ("DNS rebinding"); the ``Host`` header, TLS SNI and certificate check still use the name;
* checks every redirect hop the same way (each hop is a new connection), and refuses a redirect
  to anything but http(s) or to a URL with credentials;
* ignores proxy settings from the environment (a proxy would connect on our behalf, unchecked)
  and has no ftp/file/data handlers.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bhype_core.errors import BhypeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list[tuple[Any, ...]]]


class TargetRefused(BhypeError):
    """The URL's host is (or resolves to) an address the worker may not fetch from."""

    code = "fetch_target_refused"
    http_status = 422


def parse_networks(values: Iterable[str]) -> list[IPNetwork]:
    """Allow-list entries (``10.0.0.0/8``, ``192.0.2.7``, ``fd00::/8``) as networks; raises
    ``ValueError`` naming the bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
    return networks


def address_refusal(address: IPAddress) -> str:
    """Why ``address`` is not a public unicast address, or ``""`` when it is one.

    Python's ``is_global`` follows the IANA special-purpose registries (RFC 6890): loopback,
    private, link-local, shared (100.64/10), documentation, reserved and unspecified ranges are
    not global; multicast must be checked on its own. IPv4-mapped IPv6 (``::ffff:127.0.0.1``)
    is judged by the IPv4 address inside.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for attribute in ("is_loopback", "is_link_local", "is_multicast", "is_unspecified", "is_private"):
        if getattr(address, attribute):
            return attribute.removeprefix("is_").replace("_", "-")
    if not address.is_global:
        return "non-global"
    return ""


class AddressGuard:
    """The check and the resolution: ``allow`` lists networks fetched from although not global."""

    def __init__(self, allow: Iterable[str] = (), resolver: Resolver = socket.getaddrinfo) -> None:
        self.allow = parse_networks(allow)
        self.resolver = resolver

    def refusal(self, address: IPAddress) -> str:
        """Why ``address`` is refused (``""``: it is not)."""
        if any(address.version == network.version and address in network for network in self.allow):
            return ""
        return address_refusal(address)

    def resolve(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """``getaddrinfo`` answers for ``host`` (called once), after checking every address.

        :raises TargetRefused: an address is refused; names it and the setting to change.
        """
        try:
            answers = self.resolver(host, port, 0, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host!r}: {exc.strerror}") from None
        for _family, _, _, _, sockaddr in answers:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            reason = self.refusal(address)
            if reason:
                shown = host if host == str(address) else f"{host} ({address})"
                raise TargetRefused(
                    f"refusing to fetch from {shown}: a {reason} address; add its network to "
                    "isos.fetch_allow to allow it"
                )
        if not answers:
            raise OSError(f"cannot resolve {host!r}: no addresses")
        return answers

    def connect(self, address: tuple[str, int], timeout: Any, source_address: Any = None) -> socket.socket:
        """Replaces ``socket.create_connection`` for one HTTP connection: resolve and check once,
        then connect to exactly the checked addresses (first that answers)."""
        host, port = address
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in self.resolve(host, port):
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        assert error is not None
        raise error


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, guard: AddressGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # http.client opens its socket through this attribute: the name stays self.host (Host
        # header), only the address comes from the guard.
        self._create_connection = guard.connect


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, guard: AddressGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # HTTPSConnection.connect() wraps the socket with server_hostname=self.host: SNI and the
        # certificate check use the name, as they must.
        self._create_connection = guard.connect


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, guard: AddressGuard) -> None:
        super().__init__()
        self.guard = guard

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_GuardedHTTPConnection, guard=self.guard), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, guard: AddressGuard, context: ssl.SSLContext | None = None) -> None:
        super().__init__(context=context)
        self.guard = guard

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_GuardedHTTPSConnection, guard=self.guard)
        return self.do_open(connection, req, context=self._context)


class _GuardedRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs without credentials only; the new hop's address is
    checked when its connection opens."""

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        # Checked before urllib's own handling, which would follow ftp:// as well.
        newurl = headers.get("Location") or headers.get("URI") or ""
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetRefused(f"refusing a redirect to {newurl!r}: only http and https URLs are fetched")
        if parts.username or parts.password:
            raise TargetRefused("refusing a redirect to a URL with credentials")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def guarded_opener(
    allow: Sequence[str] = (), *, context: ssl.SSLContext | None = None, resolver: Resolver = socket.getaddrinfo
) -> urllib.request.OpenerDirector:
    """An opener for http(s) URLs that connects only to allowed addresses (module docstring).

    :param allow: networks allowed although not global (``isos.fetch_allow``).
    :param context: TLS context (default: the system's trust store, hostname checked).
    :param resolver: ``getaddrinfo``-compatible; a parameter so tests can play a DNS server
        whose answer changes.
    """
    guard = AddressGuard(allow, resolver)
    opener = urllib.request.OpenerDirector()
    for handler in (
        _GuardedHTTPHandler(guard),
        _GuardedHTTPSHandler(guard, context),
        _GuardedRedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def literal_refusal(url: str, allow: Sequence[str] = ()) -> str:
    """For an early answer at submit time: why a URL whose host is an IP address literal would be
    refused (``""`` if it would not, or if the host is a name, which only the worker resolves)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return ""
    reason = AddressGuard(allow).refusal(address)
    return f"{host} is a {reason} address; add its network to isos.fetch_allow to allow it" if reason else ""
