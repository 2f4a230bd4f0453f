"""The notification sender's SNMP engine: pysnmp keeps nothing under TMPDIR (its boots file in
``$TMPDIR/__pysnmp/`` would be written by the root worker in a directory anyone may plant);
snmpEngineBoots comes from the database and grows at each start of a sender; each host of a
group sends v3 traps as its own engine ID (a receiver keeps one (boots, time) per engine ID,
RFC 3414 §3.2 step 7), and the test notification goes through the process's one engine. Real
snmptrapd decodes every trap; a trap under a host's engine ID with an older clock is dropped,
which is what the engine IDs per host avoid."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from bhype_core.events import Event
from bhype_snmp import engines, managers, notification, sender
from bhype_snmp.sender import send_test, sender_for
from bhype_snmp.transport import send

from .kit import add_manager, snmptrapd

AUTH_KEY, PRIV_KEY = "engine-auth-S3cret", "engine-priv-S3cret"
PROCESS = Path(__file__).with_name("sending_process.py")


def trap_users(*engine_ids: bytes) -> str:
    """snmptrapd.conf(5): the v3 user under each sending engine's ID (bHype is the authoritative
    engine of its traps), logged when authenticated and encrypted."""
    lines = [f"createUser -e 0x{engine_id.hex()} nms SHA-256 {AUTH_KEY} AES {PRIV_KEY}" for engine_id in engine_ids]
    return "\n".join([*lines, "authUser log nms priv", ""])


def v3_trap_manager(runtime, port: int) -> None:
    add_manager(runtime, name="nms", host="127.0.0.1", port=port, version="3", notify_type="trap", user="nms",
                auth_key=AUTH_KEY, priv_key=PRIV_KEY)


def test_a_sending_process_leaves_nothing_in_tmpdir_and_grows_boots_at_each_start(snmp_runtime, tmp_path):
    runtime = snmp_runtime(sections={"host": {"name": "h1"}})
    database = runtime.settings.core.effective_database_url
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    with snmptrapd(tmp_path, trap_users(engines.engine_id(runtime))) as trapd:
        v3_trap_manager(runtime, trapd.port)
        for start in (1, 2, 3):
            # A worker (re)started: its own process, TMPDIR pointing at a directory we watch.
            done = subprocess.run([sys.executable, str(PROCESS), str(tmp_path / "data"), database, "h1", "2"],
                                  capture_output=True, text=True, timeout=120,
                                  env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmpdir)})
            assert done.returncode == 0, done.stderr
            report = json.loads(done.stdout.splitlines()[-1])
            assert report["tempdir"] == str(tmpdir)  # the process did use the TMPDIR we watch
            assert [r["error"] for r in report["results"]] == [None, None]
            assert engines.engine_clock(runtime).boots == start  # RFC 3414 §2.2.2, kept in the database
            # Each start sends with a higher boots and a time counted from 0: snmptrapd takes them.
            trapd.wait_notifications(2 * start, "v3 traps")
        lines = trapd.notifications()
    assert len(lines) == 6 and all("bhypeEventHost.0 = STRING: h1" in line for line in lines)
    assert [path.name for path in tmpdir.rglob("*")] == []  # no __pysnmp/<engine id>/boots, nothing at all


def test_v3_traps_from_two_group_hosts_sharing_one_database_are_all_decoded(snmp_runtime, tmp_path,
                                                                            fresh_mariadb_url, monkeypatch):
    built = []
    monkeypatch.setattr(sender, "make_engine", lambda clock: built.append(clock) or engines.make_engine(clock))
    alpha, beta = (snmp_runtime(sections={"host": {"name": name}, "core": {"database_url": fresh_mariadb_url}})
                   for name in ("alpha", "beta"))
    alpha_id, beta_id = engines.engine_id(alpha), engines.engine_id(beta)
    assert alpha_id != beta_id
    engines.next_boots(alpha, "notify")  # alpha's sender ran before: this start is its second
    # What `bhype snmp status` lists for the admin to configure the receiver with.
    assert engines.sender_engine_ids(beta) == {"alpha": alpha_id.hex(), "beta": beta_id.hex()}
    with snmptrapd(tmp_path, trap_users(alpha_id, beta_id)) as trapd:
        v3_trap_manager(alpha, trapd.port)  # one manager, stored once: both hosts send to it
        manager = managers.get_manager(beta, "nms")
        sent = 0
        for host, runtime in (("alpha", alpha), ("beta", beta), ("alpha", alpha), ("beta", beta)):
            runtime.notify(Event(kind="task.failed", message=f"failed on {host}", severity="error"))
            sender_for(runtime).flush()
            sent += 1
            trapd.wait_notifications(sent, "v3 traps")
        # The manager test of each host goes through that host's sender, between its events.
        for runtime in (beta, alpha):
            result = send_test(runtime, manager)
            assert result.notify_type == "trap" and result.error is None
            sent += 1
            trapd.wait_notifications(sent, "v3 traps")
        for runtime in (alpha, beta):
            runtime.notify(Event(kind="task.failed", message="after the tests", severity="error"))
            sender_for(runtime).flush()
            sent += 1
            trapd.wait_notifications(sent, "v3 traps")

        # What the receiver would do to a second clock under alpha's engine ID (the defect: a
        # shared engine ID): older boots, so snmptrapd drops it (notInTimeWindow) ...
        async def stale_trap():
            stale = engines.make_engine(engines.EngineClock(alpha_id, 1, time.time()))
            try:
                return await send(stale, manager, notification.test_notification(host="stale", manager="nms"))
            finally:
                stale.close_dispatcher()

        outcome = asyncio.run(stale_trap())
        assert outcome.error is None  # sent: the drop is the receiver's
        # ... while alpha's own next trap, sent after it, is decoded.
        alpha.notify(Event(kind="task.failed", message="alpha after the stale one", severity="error"))
        sender_for(alpha).flush()
        lines = trapd.wait_notifications(sent + 1, "v3 traps")
        time.sleep(1)
        lines = trapd.notifications()
    hosts = [line.split("bhypeEventHost.0 = STRING: ")[1].split()[0] for line in lines]
    assert hosts == ["alpha", "beta", "alpha", "beta", "beta", "alpha", "alpha", "beta", "alpha"], lines
    assert sum("bhypeTestNotification" in line for line in lines) == 2
    # One engine per process (here: per runtime), each its host's, started once.
    assert sorted((clock.engine_id, clock.boots) for clock in built) == sorted([(alpha_id, 2), (beta_id, 1)])
