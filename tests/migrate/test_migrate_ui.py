"""The web UI pieces (through the web UI plugin's hooks only): the admins' Peers page lists
peers (never a token) and recent moves; the Move tab on a VM page is the move dialog posting to
``/api/v1/migrate/moves``; operators see neither."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webui"))
from pages_env import HTML, PagesEnv  # noqa: E402

from bhype_core.plugin_api import session  # noqa: E402
from bhype_migrate.models import MigratePeer  # noqa: E402


@pytest.fixture
def env(tmp_path: Path) -> Iterator[PagesEnv]:
    made = PagesEnv(tmp_path)
    yield made
    made.close()


def test_peers_page_and_move_tab(env: PagesEnv) -> None:
    with session(env.runtime) as db:
        db.add(MigratePeer(name="b", url="http://10.0.0.2:8080", ssh_host="10.0.0.2", token_hint="bhype_abc"))
    root = env.client("root", "admin")
    page = root.get("/ui/peers", headers=HTML)
    assert page.status_code == 200
    assert '<tr data-peer="b">' in page.text and "http://10.0.0.2:8080" in page.text
    assert 'data-api-form="POST /api/v1/migrate/peers"' in page.text
    name = env.add_vms("root", 1, prefix="mv")[0]
    tab = root.get(f"/ui/vms/{name}?tab=move", headers=HTML)
    assert tab.status_code == 200
    assert 'data-api-form="POST /api/v1/migrate/moves"' in tab.text
    assert '<option value="b">' in tab.text and f'name="vm" value="{name}"' in tab.text
    alice = env.client("alice")
    assert alice.get("/ui/peers", headers=HTML).status_code == 404
    own = env.add_vms("alice", 1, prefix="op")[0]
    overview = alice.get(f"/ui/vms/{own}", headers=HTML)
    assert overview.status_code == 200 and "?tab=move" not in overview.text
