"""``bhype vm autostart`` and ``bhype vm shutdown-all``: host boot and host shutdown.

Both drive the ordinary ``vm.start`` / ``vm.stop`` tasks through the API one VM at a time, so
locks, hooks, preflight and the audit trail apply as for any start or stop. Autostart starts
the VMs with ``autostart.enabled`` by ``autostart.order`` (then name) and waits each one's
``autostart.delay`` after it is running; shutdown-all stops every running VM in the reverse
order, each with its ``autostart.stop_timeout`` (else ``--timeout``, else ``vm.stop_timeout``)
before the stop task forces it off, and says so. One VM failing never holds up the others.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, Protocol

from bhype_core.commands.vm_client import all_vms
from bhype_core.errors import BhypeError

ACTIVE = ("starting", "running", "stopping")
FORCED_NOTE = "did not shut down within"  # the driver's note on a stop it had to force


class Api(Protocol):
    """What the runs need from the API client (:class:`~bhype_core.commands.vm_client.VmApi`)."""

    def request(self, method: str, path: str, body: Any = None, **query: Any) -> Any: ...

    def wait_task(
        self, task_id: str, timeout: float = ..., on_progress: Any = ..., interval: float = ...
    ) -> dict[str, Any]: ...


def _details(api: Api) -> list[dict[str, Any]]:
    return [api.request("GET", f"/api/v1/vms/{vm['name']}") for vm in all_vms(api)]


def _autostart(vm: dict[str, Any]) -> dict[str, Any]:
    return (vm.get("spec") or {}).get("autostart") or {}


def start_order(vms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """VMs with autostart enabled, lowest ``order`` first (ties by name)."""
    chosen = [vm for vm in vms if _autostart(vm).get("enabled")]
    return sorted(chosen, key=lambda vm: (_autostart(vm).get("order", 100), vm["name"]))


def stop_order(vms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Running VMs in the reverse of the start order (VMs without autostart by their order too)."""
    running = [vm for vm in vms if vm.get("state") in ACTIVE]
    return sorted(running, key=lambda vm: (_autostart(vm).get("order", 100), vm["name"]), reverse=True)


def run_autostart(api: Api, echo: Callable[[str], Any] = print, sleep: Callable[[float], Any] = time.sleep,
                  task_timeout: float = 900.0) -> list[dict[str, Any]]:
    """Start the autostart VMs in order with their delays; returns one outcome per VM."""
    outcomes = []
    for vm in start_order(_details(api)):
        name, delay = vm["name"], int(_autostart(vm).get("delay", 0))
        if vm.get("state") in ACTIVE:
            echo(f"{name}: already {vm['state']}")
            outcomes.append({"vm": name, "outcome": "already running"})
            continue
        echo(f"{name}: starting (order {_autostart(vm).get('order', 100)})")
        try:
            accepted = api.request("POST", f"/api/v1/vms/{name}/start")
            api.wait_task(accepted["task_id"], timeout=task_timeout)
        except BhypeError as exc:
            echo(f"{name}: start failed: {exc.message}")
            outcomes.append({"vm": name, "outcome": "failed", "error": exc.message})
            continue
        outcomes.append({"vm": name, "outcome": "started", "at": time.time()})
        if delay:
            echo(f"{name}: running; waiting {delay} s before the next VM")
            sleep(delay)
    return outcomes


def run_shutdown_all(api: Api, timeout: float | None = None, echo: Callable[[str], Any] = print,
                     task_timeout: float = 3900.0) -> list[dict[str, Any]]:
    """Stop every running VM in reverse start order, each gracefully with its own timeout
    before the stop forces it off; returns one outcome per VM (``stopped``, ``forced``,
    ``failed``)."""
    outcomes = []
    for vm in stop_order(_details(api)):
        name = vm["name"]
        wait = _autostart(vm).get("stop_timeout") or timeout
        echo(f"{name}: ACPI shutdown, forced off after {f'{wait:g} s' if wait else 'vm.stop_timeout'}")
        query = {"timeout": wait} if wait else {}
        try:
            accepted = api.request("POST", f"/api/v1/vms/{name}/stop", **query)
            task = api.wait_task(accepted["task_id"], timeout=task_timeout)
        except BhypeError as exc:
            echo(f"{name}: stop failed ({exc.message}); forcing it off")
            try:
                api.wait_task(api.request("POST", f"/api/v1/vms/{name}/force-stop")["task_id"], timeout=task_timeout)
            except BhypeError as again:
                echo(f"{name}: force-stop failed: {again.message}")
                outcomes.append({"vm": name, "outcome": "failed", "error": again.message})
                continue
            outcomes.append({"vm": name, "outcome": "forced", "at": time.time()})
            continue
        forced = FORCED_NOTE in str(task.get("result"))
        echo(f"{name}: {'forced off: it ignored the ACPI shutdown' if forced else 'shut down'}")
        outcomes.append({"vm": name, "outcome": "forced" if forced else "stopped", "at": time.time()})
    return outcomes


def add_commands(
    sub: argparse._SubParsersAction, connection_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add ``autostart`` and ``shutdown-all`` to the ``bhype vm`` sub-commands."""
    from bhype_core.commands.vm_client import api_from

    def autostart(args: argparse.Namespace) -> int:
        outcomes = run_autostart(api_from(args))
        return 1 if any(o["outcome"] == "failed" for o in outcomes) else 0

    def shutdown_all(args: argparse.Namespace) -> int:
        outcomes = run_shutdown_all(api_from(args), timeout=args.timeout)
        return 1 if any(o["outcome"] == "failed" for o in outcomes) else 0

    start = sub.add_parser("autostart", help="start the autostart VMs in order, with their delays (host boot)")
    connection_options(start)
    start.set_defaults(vm_handler=autostart)
    stop = sub.add_parser("shutdown-all", help="stop every running VM in reverse order, forcing after each timeout")
    stop.add_argument("--timeout", type=float,
                      help="seconds per VM without autostart.stop_timeout (default: vm.stop_timeout)")
    connection_options(stop)
    stop.set_defaults(vm_handler=shutdown_all)
