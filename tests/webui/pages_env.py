"""Test helper: the real app with every installed plugin on SQLite, VM rows as the API stores
them, and browser-like clients holding real sessions of the app's session store (login through
PAM itself is tested in test_pages_login.py and the browser tests)."""

from __future__ import annotations

import random
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from bhype_core.api.app import create_app
from bhype_core.api.cookies import csrf_cookie_name
from bhype_core.api.session_store import SessionRecord, new_csrf_token, new_session_secret, session_key
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.spec import SpecContext, validate_spec
from bhype_core.testing import make_settings
from bhype_core.vm.models import VM

HTML = {"Accept": "text/html,application/xhtml+xml"}


def feature_plugins() -> set[str]:
    """Entry-point names of the installed ``bhype`` plugins other than the core's and the web UI's."""
    return {entry.name for entry in metadata.entry_points(group="bhype")
            if entry.dist is not None and entry.dist.name not in ("bhype-core", "bhype-webui")}


class PagesEnv:
    """An app over a fresh SQLite database in ``root`` (plus ``plugins``, ``(name, plugin)``)."""

    def __init__(self, root: Path, plugins: tuple[tuple[str, object], ...] = (), *, web_ui_only: bool = False,
                 **sections: Any) -> None:
        # ``web_ui_only``: the core and the web UI without the feature plugins installed beside
        # them, for tests that assert the whole navigation or name clashes with a fake plugin.
        disabled = feature_plugins() if web_ui_only else ()
        pm = make_plugin_manager(load_entrypoints=True, disabled=disabled, plugins=plugins)
        assert not {name for name in pm.blocked if name not in disabled}, pm.blocked
        sections.setdefault("auth", {}).setdefault("account_recheck_interval", 3600)
        self.runtime = build_runtime(make_settings(root / "data", **sections), pm)
        upgrade(self.runtime)
        self.app = create_app(runtime=self.runtime)
        self.rng = random.Random(5)
        self.macs: set[str] = set()

    def client(self, user: str | None = None, role: str = "operator") -> TestClient:
        """A client with a live session of ``user`` (cookies as a browser holds them after
        logging in), or an anonymous one; ``client.csrf`` is the session's token."""
        client = TestClient(self.app)
        client.csrf = ""  # type: ignore[attr-defined]
        if user is None:
            return client
        auth = self.app.state.auth
        secret, csrf, now = new_session_secret(), new_csrf_token(), time.time()
        auth.sessions.create(SessionRecord(session_key(secret), user, role, csrf, now, now, now, "127.0.0.1"))
        client.cookies.set(auth.settings.cookie_name, secret)
        client.cookies.set(csrf_cookie_name(auth.settings), csrf)
        client.csrf = csrf  # type: ignore[attr-defined]
        return client

    def add_vms(self, owner: str, count: int, prefix: str = "", state: str = "stopped") -> list[str]:
        """``count`` VM rows of ``owner`` (complete specs, as ``vm.create`` stores them)."""
        rows = []
        for index in range(count):
            data = {"name": f"{prefix or owner}-{index:04d}", "owner": owner, "template": "debian",
                    "os_type": "linux", "cpus": 2, "memory": "2G", "disks": [{"size": "20G"}], "nics": [{}],
                    "graphics": {"vnc": True}}
            spec = validate_spec(data, SpecContext(existing_macs=self.macs, rng=self.rng))
            self.macs.update(nic.mac for nic in spec.nics)
            rows.append(VM(name=spec.name, uuid=str(spec.uuid), owner=owner, datastore="default",
                           spec=spec.to_data(), state=state))
        names = [row.name for row in rows]
        with Session(self.runtime.engine) as db:
            db.add_all(rows)
            db.commit()
        return names

    def close(self) -> None:
        if "engine" in self.runtime.__dict__:
            self.runtime.engine.dispose()
