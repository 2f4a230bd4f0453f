"""``iso.fetch`` reaches only global addresses unless allowed (issue 11): loopback, link-local,
private, multicast and unspecified targets are refused, each redirect hop is checked, a name is
resolved once and the connection goes to exactly the checked address (Host header and TLS SNI
keep the name). Real HTTP(S) servers on 127.0.0.1 and 127.0.0.2 (both loopback, so nothing
leaves the machine); a resolver stands in for DNS where a name must answer differently."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _netkit import task_context
from pydantic import ValidationError

from bhype_core.fetch_guard import TargetRefused, address_refusal, guarded_opener
from bhype_core.iso_fetch import fetch_iso
from bhype_core.isos import IsoSettings


@dataclass
class Site:
    """One test server: where it listens and what it was asked."""

    url: str
    port: int
    requests: list[dict] = field(default_factory=list)
    redirect_to: str | None = None


def serve(host: str, context: ssl.SSLContext | None = None) -> tuple[Site, ThreadingHTTPServer]:
    site = Site("", 0)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            site.requests.append({"path": self.path, "host": self.headers.get("Host")})
            if site.redirect_to and self.path != "/final":
                self.send_response(302)
                self.send_header("Location", site.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"iso bytes"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer((host, 0), Handler)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    site.port = httpd.server_address[1]
    site.url = f"{'https' if context else 'http'}://{host}:{site.port}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return site, httpd


@pytest.fixture
def sites() -> Iterator[tuple[Site, Site]]:
    """A server on 127.0.0.1 and another on 127.0.0.2."""
    first, first_httpd = serve("127.0.0.1")
    second, second_httpd = serve("127.0.0.2")
    yield first, second
    for httpd in (first_httpd, second_httpd):
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "loopback"), ("::1", "loopback"), ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"), ("10.0.0.1", "private"), ("192.168.1.1", "private"),
        ("172.16.0.1", "private"), ("fd00::1", "private"), ("100.64.0.1", "non-global"),
        ("224.0.0.1", "multicast"), ("239.1.2.3", "multicast"), ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("::ffff:127.0.0.1", "loopback"),
        ("192.0.2.7", "private"), ("240.0.0.1", "private"), ("255.255.255.255", "private"),
        ("8.8.8.8", ""), ("2001:4860:4860::8888", ""), ("151.101.1.1", ""),
    ],
)
def test_which_addresses_are_refused(address, reason):
    assert address_refusal(ipaddress.ip_address(address)) == reason


def test_fetch_refuses_loopback_by_default_and_the_server_hears_nothing(network_runtime, sites):
    first, _ = sites
    context = task_context(network_runtime, "iso.fetch")
    with pytest.raises(TargetRefused) as refused:
        fetch_iso(context, url=f"{first.url}/test.iso", name="test.iso")
    assert "loopback" in refused.value.message and "isos.fetch_allow" in refused.value.message
    assert first.requests == []


def test_a_name_is_checked_by_what_it_resolves_to(network_runtime, sites):
    """``localhost`` is a name, not an address literal: the worker resolves it and refuses it."""
    first, _ = sites
    context = task_context(network_runtime, "iso.fetch")
    with pytest.raises(TargetRefused, match="localhost"):
        fetch_iso(context, url=f"http://localhost:{first.port}/test.iso", name="test.iso")
    assert first.requests == []


def test_the_allow_list_lets_a_local_mirror_through(network_runtime, sites):
    first, _ = sites
    network_runtime.settings.section("isos").fetch_allow = ["127.0.0.0/30"]
    context = task_context(network_runtime, "iso.fetch")
    result = fetch_iso(context, url=f"{first.url}/test.iso", name="test.iso")
    assert result["size"] == len(b"iso bytes") and first.requests[0]["path"] == "/test.iso"


def test_every_redirect_hop_is_checked(sites):
    first, second = sites
    opener = guarded_opener(["127.0.0.1/32"])  # 127.0.0.2 is loopback too, but not allowed
    # A hop inside the allow-list is followed...
    first.redirect_to = "/final"
    with opener.open(f"{first.url}/start", timeout=10) as answer:
        assert answer.read() == b"iso bytes"
    # ...one to a refused address is not, and that server never hears a thing.
    first.redirect_to = f"{second.url}/final"
    with pytest.raises(TargetRefused, match="127.0.0.2"):
        opener.open(f"{first.url}/start", timeout=10)
    assert second.requests == []
    # Nor a redirect away from http(s), or to a URL with credentials.
    for target in ("ftp://127.0.0.1/x.iso", "file:///etc/shadow", f"http://u:p@127.0.0.1:{first.port}/final"):
        first.redirect_to = target
        with pytest.raises(TargetRefused, match="redirect"):
            opener.open(f"{first.url}/start", timeout=10)


class RebindingResolver:
    """DNS whose answer changes: first the allowed address, then the refused one."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, *args: object) -> list[tuple]:
        self.calls.append(host)
        address = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


def test_a_name_is_resolved_once_and_connected_to_as_checked(sites):
    first, second = sites
    resolver = RebindingResolver("127.0.0.1", "127.0.0.2")
    opener = guarded_opener(["127.0.0.1/32"], resolver=resolver)
    with opener.open(f"http://iso.example.test:{first.port}/test.iso", timeout=10) as answer:
        assert answer.read() == b"iso bytes"
    # One resolution for the one connection; it went to the checked address; Host kept the name.
    assert resolver.calls == ["iso.example.test"]
    assert first.requests == [{"path": "/test.iso", "host": f"iso.example.test:{first.port}"}]
    assert second.requests == []
    # The next connection resolves again, gets the other answer, and is refused before connecting.
    with pytest.raises(TargetRefused, match=r"iso\.example\.test \(127\.0\.0\.2\)"):
        opener.open(f"http://iso.example.test:{second.port}/test.iso", timeout=10)
    assert second.requests == []


def test_a_name_with_any_refused_answer_is_refused(sites):
    first, _ = sites

    def mixed(host: str, port: int, *args: object) -> list[tuple]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in ("127.0.0.1", "10.9.9.9")]

    with pytest.raises(TargetRefused, match="10.9.9.9"):
        guarded_opener(["127.0.0.1/32"], resolver=mixed).open(f"http://mirror.test:{first.port}/", timeout=10)
    assert first.requests == []


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[tuple[Site, ssl.SSLContext, list[str]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for ``iso.example.test`` only; yields it,
    a client context trusting that certificate, and the SNI names the server was sent."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=iso.example.test", "-addext", "subjectAltName=DNS:iso.example.test"],
        check=True, capture_output=True, timeout=60,
    )
    names: list[str] = []
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.sni_callback = lambda sock, name, ctx: names.append(name)
    site, httpd = serve("127.0.0.1", server_context)
    client_context = ssl.create_default_context(cafile=str(cert))
    yield site, client_context, names
    httpd.shutdown()
    httpd.server_close()


def test_https_keeps_sni_and_the_certificate_check_on_the_name(tls_site):
    site, context, names = tls_site
    resolver = RebindingResolver("127.0.0.1")
    opener = guarded_opener(["127.0.0.1/32"], context=context, resolver=resolver)
    with opener.open(f"https://iso.example.test:{site.port}/test.iso", timeout=10) as answer:
        assert answer.read() == b"iso bytes"
    assert names == ["iso.example.test"]
    # The address itself is not what the certificate names: connecting by it fails the check.
    with pytest.raises(Exception, match="certificate|hostname|IP address mismatch"):
        opener.open(f"https://127.0.0.1:{site.port}/test.iso", timeout=10)


def test_the_allow_list_setting_is_validated():
    assert IsoSettings.model_validate({"fetch_allow": ["10.0.0.0/8", "192.0.2.7", "fd00::/8"]})
    with pytest.raises(ValidationError, match="'not-a-network' is not an IP address or network"):
        IsoSettings.model_validate({"fetch_allow": ["10.0.0.0/8", "not-a-network"]})
