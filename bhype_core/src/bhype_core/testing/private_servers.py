"""A private Redis and a private MariaDB server that a test may stop and start again (issue 22).

The machine's shared servers (Redis on 6379, MariaDB on 3306) belong to everyone: a test that
restarts a server starts its own, as a foreground child (not forking: a forked daemon lingers
and pid checks lie), on a free port with its files in the test's directory, and stops only it.

- :class:`PrivateRedis`: ``redis-server`` with persistence off (no RDB snapshots, no AOF): a
  restart loses every key, the worst case for the queue.
- :class:`PrivateMariaDB`: ``mariadbd`` on its own datadir (``mariadb-install-db``), port and
  socket, with InnoDB durable as in production: a restart keeps every committed row.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bhype_core.testing.parts import require_program
from bhype_core.testing.ports import free_port

READY_TIMEOUT = 60.0


def user_option() -> str:
    """The account the private MariaDB runs as: the test's own (mariadbd wants ``--user=root``
    said explicitly to run as root)."""
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


class PrivateServer:
    """One server process the test owns; :meth:`start`, :meth:`stop`, :meth:`restart`."""

    name = "server"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.log_path = directory / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> PrivateServer:
        """Start the server and wait until it answers."""
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log_file,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{self.name} did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) if it runs; only this process, by its pid."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again on the same port and files."""
        self.stop()
        time.sleep(down_for)
        self.start()


class PrivateRedis(PrivateServer):
    """``redis-server`` on 127.0.0.1 and a free port, keeping nothing across a restart."""

    name = "redis"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.program = require_program("redis-server", "redis-server", "redis")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        # redis.conf(5) directives as arguments: no RDB snapshots (save ""), no append-only file.
        return [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no"]

    def ready(self) -> bool:
        import redis

        try:
            client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False


class PrivateMariaDB(PrivateServer):
    """``mariadbd`` on its own datadir, 127.0.0.1, a free port and its own socket; user root
    without a password, database ``bhype``."""

    name = "mariadb"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.program = require_program("mariadbd", "mariadb-server", "mariadb")
        self.datadir = directory / "data"
        self.socket = directory / "mariadb.sock"

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/bhype"

    def install(self) -> PrivateMariaDB:
        """Create the datadir (mariadb-install-db(1)), owned by the user running the test."""
        program = require_program("mariadb-install-db", "mariadb-server", "mariadb")
        self.datadir.mkdir(parents=True)
        # --no-defaults: not the machine's my.cnf. As root the server runs as root (--user=root):
        # the test's directories are private (0700) to the user running the test.
        result = subprocess.run([program, "--no-defaults", f"--datadir={self.datadir}", f"--user={user_option()}",
                                 "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"],
                                capture_output=True, timeout=300)
        if result.returncode != 0:
            raise AssertionError(f"mariadb-install-db failed: {result.stdout.decode(errors='replace')[-2000:]}"
                                 f"{result.stderr.decode(errors='replace')[-2000:]}")
        return self

    def argv(self) -> list[str]:
        # mariadbd(8) options: no file of the machine's (--no-defaults), its own everything.
        return [self.program, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
                f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                f"--pid-file={self.directory / 'mariadb.pid'}", "--innodb-buffer-pool-size=32M",
                "--skip-log-bin", f"--user={user_option()}"]

    def ready(self) -> bool:
        import pymysql

        try:
            connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1)
        except pymysql.MySQLError:
            return False
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS bhype CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return True


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running private Redis (:class:`PrivateRedis`), stopped after the test."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = PrivateRedis(directory)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_mariadb(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    """A running private MariaDB (:class:`PrivateMariaDB`) with an empty database ``bhype``,
    stopped after the test."""
    directory = tmp_path / "mariadb"
    directory.mkdir()
    server = PrivateMariaDB(directory).install()
    server.start()
    yield server
    server.stop()
