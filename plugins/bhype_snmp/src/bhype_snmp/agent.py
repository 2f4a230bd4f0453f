"""bHype's read-only SNMP agent (pysnmp command responder; SNMPv2c community and/or SNMPv3
users with authPriv) serving BHYPE-MIB's host scalars and bhypeVmTable from a snapshot; off
unless ``[snmp] agent_enabled``.

Why an agent of its own and not an AgentX subagent (docs/snmp.md): the Python AgentX libraries
are unmaintained (pyagentx3 0.1.4, 2023, beta) or LGPL ctypes wrappers stuck at Python 3.5
(netsnmpagent 0.6.0), while pysnmp (BSD, maintained) already sends the notifications and has
a command responder; writing AgentX PDUs by hand is the hand-made encoding this plugin avoids.
The host's net-snmp ``snmpd`` still serves the table on port 161 with one line,
``proxy -v 2c -c COMMUNITY 127.0.0.1:1161 <bhypeMIB OID>`` (snmpd.conf(5), "proxy").

Requests are answered from the last snapshot only (refreshed every ``agent_refresh`` seconds
by the worker's sampler): a walk never runs a host command or a query.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902, rfc1905

from bhype_snmp import oids
from bhype_snmp.engines import EngineClock, make_engine
from bhype_snmp.transport import AUTH, PRIV

log = logging.getLogger(__name__)

TYPES = {"str": lambda v: rfc1902.OctetString(str(v).encode()), "octets": rfc1902.OctetString, "gauge": rfc1902.Gauge32,
         "unsigned": rfc1902.Unsigned32, "integer": rfc1902.Integer32, "ticks": rfc1902.TimeTicks}
OBJECT_PREFIXES = [(*oids.HOST_OBJECTS[name],) for name in oids.HOST_OBJECTS] + [
    (*oids.VM_ENTRY, column) for column in oids.VM_COLUMNS.values()]


class SnapshotInstrumentation:
    """The MIB instrumentation pysnmp's responders call: Get and GetNext (GetBulk uses GetNext)
    over a sorted snapshot, swapped whole by :meth:`replace` (readers never see half of one)."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, ...]] = []
        self._values: dict[tuple[int, ...], Any] = {}

    def replace(self, entries: list[tuple[tuple[int, ...], tuple[str, Any]]]) -> None:
        """Serve ``entries`` (sorted ``(oid, (type, value))``) from now on."""
        values = {oid: TYPES[kind](value) for oid, (kind, value) in entries}
        self._keys, self._values = sorted(values), values  # one assignment each: atomic for readers

    def read_variables(self, *var_binds: Any, **_: Any) -> list[tuple[Any, Any]]:
        keys, values = self._keys, self._values
        answer = []
        for oid, _value in var_binds:
            key = tuple(oid)
            if key in values:
                answer.append((oid, values[key]))
            elif any(key[: len(prefix)] == prefix for prefix in OBJECT_PREFIXES):
                answer.append((oid, rfc1905.noSuchInstance))
            else:
                answer.append((oid, rfc1905.noSuchObject))
        del keys
        return answer

    def read_next_variables(self, *var_binds: Any, **_: Any) -> list[tuple[Any, Any]]:
        keys, values = self._keys, self._values
        answer = []
        for oid, _value in var_binds:
            index = bisect.bisect_right(keys, tuple(oid))
            if index < len(keys):
                answer.append((rfc1902.ObjectName(keys[index]), values[keys[index]]))
            else:
                answer.append((oid, rfc1905.endOfMibView))
        return answer

    def write_variables(self, *var_binds: Any, **_: Any) -> list[tuple[Any, Any]]:
        raise NotImplementedError("the bHype agent is read-only")  # no SetCommandResponder is registered


@dataclass(frozen=True)
class AgentUser:
    """One SNMPv3 user as the agent configures it (the keys never show in a repr or a log)."""

    name: str
    auth_protocol: str
    auth_key: str = field(repr=False)
    priv_protocol: str
    priv_key: str = field(repr=False)


class Agent:
    """The UDP responder, in a thread with its own event loop. ``community`` empty: no SNMPv2c
    (v3 users only, :meth:`set_users`)."""

    def __init__(self, host: str, port: int, community: str, clock: EngineClock | None = None) -> None:
        self.address = (host, port)
        self.community = community
        self.clock = clock  # this host's agent engine (None: a throw-away engine ID)
        self.users: dict[str, AgentUser] = {}
        self._snmp: engine.SnmpEngine | None = None
        self.instrumentation = SnapshotInstrumentation()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Bind the port and answer from now on.

        :raises OSError: the port could not be bound (named in the message).
        """
        self._thread = threading.Thread(target=self._run, name="bhype-snmp-agent", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise OSError(f"SNMP agent on {self.address[0]}:{self.address[1]} did not start")
        if self._error is not None:
            raise OSError(f"SNMP agent on {self.address[0]}:{self.address[1]}: {self._error}") from self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        snmp = self._snmp = make_engine(self.clock)
        try:
            transport = udp.UdpAsyncioTransport().open_server_mode(self.address)
            config.add_transport(snmp, udp.DOMAIN_NAME, transport)
            if self.community:
                config.add_v1_system(snmp, "bhype-agent", self.community)
                # Read-only view of bHype's subtree, nothing else (RFC 3415 VACM; model 2 = SNMPv2c).
                config.add_vacm_user(snmp, 2, "bhype-agent", "noAuthNoPriv", readSubTree=oids.ARC)
            snmp_context = context.SnmpContext(snmp)
            snmp_context.unregister_context_name(b"")  # the engine's own MIB tree: not served
            snmp_context.register_context_name(b"", self.instrumentation)
            for responder in (cmdrsp.GetCommandResponder, cmdrsp.NextCommandResponder,
                              cmdrsp.BulkCommandResponder):
                responder(snmp, snmp_context)
            loop.run_until_complete(self._bound(transport))
        except BaseException as exc:  # reported by start()
            self._error = exc
            snmp.close_dispatcher()
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            snmp.close_dispatcher()
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    @staticmethod
    async def _bound(transport: Any) -> None:
        """Wait for the datagram endpoint pysnmp opens in the background; raise its error."""
        for _ in range(100):
            future = getattr(transport, "_lport", None)
            if future is not None and future.done():
                future.result()  # the bind's OSError, if any
                return
            await asyncio.sleep(0.02)
        raise OSError("the UDP endpoint did not open")

    def set_users(self, users: list[AgentUser], timeout: float = 30.0) -> None:
        """Answer exactly these SNMPv3 users from now on (authPriv only; added, changed and
        removed ones applied in the agent's own thread, between requests)."""
        wanted = {user.name: user for user in users}
        if wanted == self.users:
            return
        self._call(lambda: self._apply_users(wanted), timeout)

    def _apply_users(self, wanted: dict[str, AgentUser]) -> None:
        snmp = self._snmp
        if snmp is None:
            raise RuntimeError("the SNMP agent is not running")
        for name in set(self.users) - set(wanted):
            # The USM user goes (requests become unknownUserName reports); its VACM group stays,
            # harmless without a user, since config.delete_vacm_user would also drop the
            # context every other user reads through.
            config.delete_v3_user(snmp, name)
        for name, user in wanted.items():
            if self.users.get(name) == user:
                continue
            # add_v3_user replaces a user of that name (destroy, then create): changed keys apply.
            config.add_v3_user(snmp, name, AUTH[user.auth_protocol], user.auth_key,
                               PRIV[user.priv_protocol], user.priv_key)
            # Read-only view of bHype's subtree at authPriv: noAuthNoPriv and authNoPriv requests
            # of the same user find no access (RFC 3415 §3.2; model 3 = USM).
            config.add_vacm_user(snmp, 3, name, "authPriv", readSubTree=oids.ARC)
        self.users = wanted

    def _call(self, function: Callable[[], None], timeout: float) -> None:
        """Run ``function`` in the agent's loop and wait for it (its error is raised here)."""
        if self._loop is None or self._loop.is_closed():
            raise RuntimeError("the SNMP agent is not running")
        asyncio.run_coroutine_threadsafe(self._run_call(function), self._loop).result(timeout)

    @staticmethod
    async def _run_call(function: Callable[[], None]) -> None:
        function()

    def stop(self) -> None:
        """Stop answering and free the port."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
