"""Real snmptrapd receives what ``bhype_notify`` sends: v2c traps and v3 (SHA-256/AES) informs,
decoded with BHYPE-MIB so the output names bHype's objects; a wrong v3 key is refused by
snmptrapd and reported by the manager test."""

from __future__ import annotations

import logging
import re

from bhype_core.events import Event
from bhype_snmp import engines, managers
from bhype_snmp.sender import send_test, sender_for
from bhype_snmp.tasks import check_manager

from .kit import add_manager, snmptrapd

COMMUNITY = "c0mmunity-S3cret"
AUTH_KEY, PRIV_KEY = "auth-pass-S3cret", "priv-pass-S3cret"


def v3_inform_config(user: str = "nms") -> str:
    # Informs: snmptrapd is the authoritative engine, so the user needs no -e (snmptrapd.conf(5)).
    return f"createUser {user} SHA-256 {AUTH_KEY} AES {PRIV_KEY}\nauthUser log {user} priv\n"


def test_v2c_trap_for_any_event_kind_names_bhype_objects(snmp_runtime, tmp_path):
    runtime = snmp_runtime(web_url="https://bhype.example.net/", host_name="host7")
    with snmptrapd(tmp_path, f"authCommunity log {COMMUNITY}\n") as trapd:
        add_manager(runtime, name="nms", host="127.0.0.1", port=trapd.port, community=COMMUNITY)
        # task.failed is the core's; the kinds other plugins add travel the same way (a var-bind).
        runtime.notify(Event(kind="task.failed", message="vm.start failed: no such ISO", severity="error",
                             subject="vm:web1", user="alice", data={"task_id": 42, "kind": "vm.start"}))
        sender_for(runtime).flush()
        [line] = trapd.wait_notifications(1)
    assert "snmpTrapOID.0 = OID: BHYPE-MIB::bhypeEvent" in line
    assert 'BHYPE-MIB::bhypeEventKind.0 = STRING: task.failed' in line
    assert "BHYPE-MIB::bhypeEventSeverity.0 = INTEGER: error(3)" in line
    assert 'BHYPE-MIB::bhypeEventHost.0 = STRING: host7' in line
    assert 'BHYPE-MIB::bhypeEventVmName.0 = STRING: web1' in line
    assert 'BHYPE-MIB::bhypeEventUser.0 = STRING: alice' in line
    assert "BHYPE-MIB::bhypeEventTaskId.0 = Gauge32: 42" in line
    assert 'BHYPE-MIB::bhypeEventText.0 = STRING: vm.start failed: no such ISO' in line
    assert 'BHYPE-MIB::bhypeEventLink.0 = STRING: https://bhype.example.net/ui/tasks/42' in line
    assert re.search(r'bhypeEventId\.0 = STRING: [0-9a-f-]{36}', line)
    assert re.search(r"bhypeEventTime\.0 = STRING: \d{4}-\d{1,2}-\d{1,2},", line)  # DateAndTime, decoded
    assert COMMUNITY not in line


def test_v3_informs_with_auth_and_priv_are_acknowledged(snmp_runtime, tmp_path, caplog):
    runtime = snmp_runtime()
    with snmptrapd(tmp_path, v3_inform_config()) as trapd:
        add_manager(runtime, name="secure", host="127.0.0.1", port=trapd.port, version="3", notify_type="inform",
                    user="nms", auth_key=AUTH_KEY, priv_key=PRIV_KEY)
        with caplog.at_level(logging.DEBUG):
            runtime.notify(Event(kind="vm.crashed", message="bhyve exited with status 4", severity="error",
                                 subject="vm:db1",
                                 data={"exit_status": 4, "vm_uuid": "0f6e2c1a-3b7d-4c2e-9a55-1d2e3f4a5b6c"}))
            sender = sender_for(runtime)
            sender.flush()
        [line] = trapd.wait_notifications(1)
    assert 'BHYPE-MIB::bhypeEventKind.0 = STRING: vm.crashed' in line
    assert 'BHYPE-MIB::bhypeEventVmUuid.0 = STRING: 0f6e2c1a-3b7d-4c2e-9a55-1d2e3f4a5b6c' in line
    assert [r.acknowledged for r in sender.results] == [True] and sender.stats["acknowledged"] == 1
    assert AUTH_KEY not in caplog.text and PRIV_KEY not in caplog.text


def test_test_notification_reports_the_inform_acknowledged(snmp_runtime, tmp_path):
    runtime = snmp_runtime()
    with snmptrapd(tmp_path, v3_inform_config()) as trapd:
        add_manager(runtime, name="secure", host="127.0.0.1", port=trapd.port, version="3", notify_type="inform",
                    user="nms", auth_key=AUTH_KEY, priv_key=PRIV_KEY)
        result = send_test(runtime, managers.get_manager(runtime, "secure"))
        [line] = trapd.wait_notifications(1)
    assert result.acknowledged is True and result.error is None and result.attempts == 1
    assert "snmpTrapOID.0 = OID: BHYPE-MIB::bhypeTestNotification" in line


def test_a_wrong_v3_key_is_refused_by_snmptrapd_and_reported(snmp_runtime, tmp_path, caplog):
    runtime = snmp_runtime()
    with snmptrapd(tmp_path, v3_inform_config()) as trapd:
        add_manager(runtime, name="wrong", host="127.0.0.1", port=trapd.port, version="3", notify_type="inform",
                    user="nms", auth_key="not-the-auth-key", priv_key=PRIV_KEY, retries=2)
        logged = []

        class Context:
            def __init__(self):
                self.runtime = runtime

            def log(self, message, level="info"):
                logged.append((level, message))

        result = check_manager(Context(), "wrong")
        # An event to the same manager: the unacknowledged inform is logged, not dropped silently.
        with caplog.at_level(logging.ERROR, logger="bhype_snmp.sender"):
            runtime.notify(Event(kind="task.failed", message="x", severity="error"))
            sender_for(runtime).flush()
        assert trapd.notifications() == []  # snmptrapd decoded nothing: it refused the message
    assert result["acknowledged"] is False and result["manager"] == "wrong"
    assert "wrongDigest" in result["error"] or "Wrong SNMP PDU digest" in result["error"], result
    assert result["attempts"] == 1  # a refusal is not retried (a timeout would be)
    assert logged[-1][0] == "warning" and "not acknowledged" in logged[-1][1]
    assert "SNMP inform to manager wrong not acknowledged" in caplog.text and "task.failed" in caplog.text
    assert "not-the-auth-key" not in caplog.text and "not-the-auth-key" not in str(result)


class AcmePlugin:
    """A plugin that declares an event kind of its own after bHype shipped BHYPE-MIB."""

    from bhype_core.plugin_api import hookimpl

    @hookimpl
    def bhype_register_event_kinds(self, register):
        from bhype_core.plugin_api import EventKind

        register(EventKind("acme.widget_jammed", "critical", "A widget jammed.", {"widget": "which one"}))


def test_v3_trap_as_the_stored_engine_id_for_a_kind_another_plugin_declares(snmp_runtime, register_plugin,
                                                                               tmp_path):
    register_plugin(AcmePlugin(), "acme")
    runtime = snmp_runtime()
    engine = engines.engine_id(runtime).hex()
    # Traps: bHype is the authoritative engine, so snmptrapd knows the user under bHype's engine ID.
    config = f"createUser -e 0x{engine} nms SHA-512 {AUTH_KEY} AES {PRIV_KEY}\nauthUser log nms priv\n"
    with snmptrapd(tmp_path, config) as trapd:
        add_manager(runtime, name="v3trap", host="127.0.0.1", port=trapd.port, version="3", user="nms",
                    auth_protocol="SHA512", auth_key=AUTH_KEY, priv_key=PRIV_KEY)
        runtime.notify(Event(kind="acme.widget_jammed", message="widget 3 jammed", severity="critical",
                             data={"widget": 3}))
        sender_for(runtime).flush()
        [line] = trapd.wait_notifications(1)
    assert "BHYPE-MIB::bhypeEventKind.0 = STRING: acme.widget_jammed" in line
    assert "BHYPE-MIB::bhypeEventSeverity.0 = INTEGER: critical(4)" in line


def test_an_unanswered_inform_is_retried_then_logged(snmp_runtime, caplog):
    import socket

    runtime = snmp_runtime()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # receives, never answers
        silent.bind(("127.0.0.1", 0))
        silent.settimeout(0.5)
        add_manager(runtime, name="mute", host="127.0.0.1", port=silent.getsockname()[1], community=COMMUNITY,
                    notify_type="inform", timeout=1, retries=2)
        with caplog.at_level(logging.ERROR, logger="bhype_snmp.sender"):
            runtime.notify(Event(kind="task.failed", message="nobody listens", severity="error"))
            sender = sender_for(runtime)
            assert sender.flush(60)
        received = []
        while True:
            try:
                received.append(silent.recv(65535))
            except TimeoutError:
                break
    # The first send and two retries (each waiting twice as long as the one before), then given up.
    assert len(received) == 3 and sender.results[-1].attempts == 3 and sender.results[-1].acknowledged is False
    assert sender.stats["unacknowledged"] == 1
    assert "SNMP inform to manager mute not acknowledged after 3 attempt(s): event task.failed" in caplog.text
