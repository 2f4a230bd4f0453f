"""A loopback HTTP server of in-memory files for tests that download (image mirrors, ISOs).

Files are looked up by the request's path, or by its last path component when the server was
made ``by_name`` (a mirror folder whose prefix the test does not care about). Every request
path is recorded, so a test can prove what was (not) downloaded.
"""

from __future__ import annotations

import threading
from collections.abc import MutableMapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class FileServer:
    """Serves ``files`` (path or name → bytes) on 127.0.0.1 until :meth:`close`.

    ``url`` is the base URL (no trailing slash); ``requests`` the paths asked for, in order.
    The mapping is read at every request: a test may change it while the server runs.
    """

    def __init__(self, files: MutableMapping[str, bytes], *, by_name: bool = False) -> None:
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                key = self.path.rsplit("/", 1)[-1] if by_name else self.path
                body = server.files.get(key)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, name="test-file-server", daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
