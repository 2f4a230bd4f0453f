"""``bhype top --once`` and ``bhype stats VM --json`` against the real API served over HTTP,
with a token of an operator: the answers are the API's (their VMs only)."""

from __future__ import annotations

import json
import time

from standins import start_standin, stop_all

from bhype_core.cli import main as bhype_main
from bhype_core.testing.api_server import served_cli
from bhype_monitor import live


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = bhype_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_top_and_stats(vm_monitor_runtime, tmp_path, monkeypatch, capsys) -> None:
    runtime = vm_monitor_runtime(queue={"backend": "sqlite"}, monitor={"sample_interval_seconds": 2})
    standins = [start_standin(runtime, "mine", "alice", burn=True), start_standin(runtime, "theirs", "bob")]
    try:
        # The served API's in-process worker runs the real sampler thread (its lease, its ticks).
        with served_cli(runtime, tmp_path, monkeypatch, [("alice", "operator")], "alice") as cli:
            config = ["--config", str(cli["config"])]
            deadline = time.monotonic() + 120  # a bound on a loaded machine, not a timing assertion
            def sampled() -> bool:
                vm = (live.get(runtime) or {}).get("vms", {}).get(standins[0].uuid, {})
                return "cpu_percent" in vm.get("metrics", {})

            while not sampled():
                assert time.monotonic() < deadline, "the worker's sampler took no second sample"
                time.sleep(0.5)
            time.sleep(2.5)  # one more sample, so the history's newest bucket has a CPU %
            code, out, _ = run_cli(capsys, *config, "top", "--once")
            assert code == 0 and "VMs by cpu:" in out and "mine" in out and "theirs" not in out
            assert out.splitlines()[0].startswith("host  cpu ")
            code, out, _ = run_cli(capsys, *config, "stats", "mine", "--json", "--since", "600")
            body = json.loads(out)
            assert code == 0 and body["name"] == "mine" and body["metrics"]["mem_rss"] > 0
            assert body["series"]["name"] == "mine" and "cpu_percent" in body["series"]["metrics"]
            code, out, err = run_cli(capsys, *config, "stats", "theirs", "--json")
            assert code == 1 and out == "" and "theirs" in err  # bob's VM: not found for alice
    finally:
        stop_all(standins)
