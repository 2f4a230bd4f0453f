"""Fixtures for move tests: two (or more) real bHype hosts in network namespaces."""

from __future__ import annotations

from typing import Any

import pytest

from bhype_core.testing.second_host import BhypeHost, bhype_hosts  # noqa: F401  (fixture)


def wait_task(host: BhypeHost, accepted: dict[str, Any], expect: str | None = "succeeded",
              timeout: float = 600) -> dict[str, Any]:
    """Follow a task on ``host`` to its end; assert its final state when ``expect`` is given."""
    api = host.api()
    import time

    deadline = time.monotonic() + timeout
    while True:
        task = api.request("GET", f"/api/v1/tasks/{accepted.get('task_id') or accepted['id']}")
        if task["state"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, f"task {task['kind']} still {task['state']}:\n{host.log('worker')[-3000:]}"
        time.sleep(0.3)
    if expect is not None:
        assert task["state"] == expect, f"{task}\n{host.log('worker')[-3000:]}"
    return task


def pair(a: BhypeHost, b: BhypeHost, name: str = "b") -> dict[str, Any]:
    """Pair ``a`` with ``b`` (as peer ``name``) and authorise a's key in b's sshd."""
    body = {"name": name, "url": b.url, "token": b.admin_token}
    result = wait_task(a, a.api().request("POST", "/api/v1/migrate/peers", body))["result"]
    with open(b.authorized_keys, "a") as keys:
        keys.write(result["public_key"] + "\n")
    return result


@pytest.fixture
def two_hosts(bhype_hosts: Any) -> tuple[BhypeHost, BhypeHost]:
    """Host ``a`` (moves from) and host ``b`` (sshd; moves to), on QEMU under TCG."""
    sections = {"qemu": {"accel": "tcg"}}
    a = bhype_hosts("a", **sections)
    b = bhype_hosts("b", sshd=True, **sections)
    return a, b
