"""``[api] trusted_proxies`` through a real uvicorn server: X-Forwarded-For/-Proto are believed
only from the listed addresses (nginx on loopback), never by default."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
import uvicorn

from bhype_core.commands.serve import proxy_options
from bhype_core.testing.ports import free_port


async def echo(scope, receive, send):
    """Answers with the client address and scheme uvicorn decided on."""
    if scope["type"] != "http":
        return
    body = json.dumps({"client": scope["client"][0], "scheme": scope["scheme"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(("trusted", "believed"), [([], False), (["127.0.0.1"], True), (["10.0.0.0/8"], False)])
def test_forwarded_headers_only_from_trusted_proxies(trusted, believed) -> None:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(echo, host="127.0.0.1", port=port, log_level="error",
                                           **proxy_options(trusted)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/",
                                         headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
        for _ in range(200):  # until the server listens (it is started above, in this test)
            try:
                answer = json.load(urllib.request.urlopen(request, timeout=5))
                break
            except OSError:
                threading.Event().wait(0.05)
        else:
            raise AssertionError("uvicorn did not start")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    expected = {"client": "203.0.113.7", "scheme": "https"} if believed else {"client": "127.0.0.1", "scheme": "http"}
    assert answer == expected
