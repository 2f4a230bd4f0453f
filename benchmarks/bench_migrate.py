"""Moving a VM between two real bHype hosts on this machine (network namespaces joined by veth
pairs, own databases, queues, API and worker processes, a real sshd on the target): a cold move
of a 4 GiB sparse image with 1 GiB written, against copying the same image by hand with
``rsync -a --sparse`` over the same SSH path (the anchor, same run), as a ratio.

Second table (``--scenario warm``, :mod:`migrate_warm`): the offline window of a warm move of a
running guest writing 1 MiB/s, with rsync passes and with QEMU's dirty-block tracking, against a
cold move of the same kind of guest, in the same run (``--warm-cases cold,rsync,dirty``).

Run: ``./dev bench migrate`` or ``.venv/bin/python benchmarks/bench_migrate.py [--scenario all|cold|warm]
[--gib 4] [--written 1024] [--warm-gib 4] [--warm-written 256] [--warm-cases cold,rsync,dirty]`` (MiB).
Needs root. Every byte is checked: the moved and the hand-copied images' SHA-256 against the
source's. The move's time includes everything bHype does besides the copy (stop, checksums on
both hosts, registering through the peer's API, removing the source).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from report import print_table

from bhype_core.testing.second_host import host_lan

MIB = 2**20
TEMPLATE = """title = "bench"
os_type = "linux"
[spec]
cpus = 1
memory = "256M"
disks = []
nics = []
[spec.boot]
mode = "grub"
kernel = "/bin/true"
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def wait(api, accepted: dict) -> dict:
    while True:
        task = api.request("GET", f"/api/v1/tasks/{accepted['task_id']}")
        if task["state"] not in ("queued", "running"):
            if task["state"] != "succeeded":
                raise SystemExit(f"task {task['kind']} {task['state']}: {task.get('error')}")
            return task
        time.sleep(0.2)


def fill(image: Path, size: int, written: int) -> None:
    """Write ``written`` bytes of random data spread over the ``size``-byte sparse image."""
    chunks = written // (4 * MIB)
    stride = size // chunks
    with open(image, "r+b") as disk:
        for index in range(chunks):
            disk.seek(index * stride)
            disk.write(os.urandom(4 * MIB))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=int, default=4, help="image size (GiB)")
    parser.add_argument("--written", type=int, default=1024, help="MiB of data written in it")
    parser.add_argument("--scenario", choices=("all", "cold", "warm"), default="all")
    parser.add_argument("--warm-gib", type=int, default=4, help="disk size of the warm case's guests (GiB)")
    parser.add_argument("--warm-written", type=int, default=256, help="MiB written in them before they start")
    parser.add_argument("--warm-cases", default="cold,rsync,dirty",
                        help="which warm-scenario moves run (cold, rsync, dirty; comma-separated)")
    args = parser.parse_args()
    size, written = args.gib * 1024 * MIB, args.written * MIB
    with host_lan() as create:
        roots = []
        for name in ("a", "b"):
            templates = Path(f"/tmp/bh-bench-{os.getpid()}-{name}-templates")
            templates.mkdir(exist_ok=True)
            (templates / "bench.toml").write_text(TEMPLATE)
            roots.append(templates)
        sections: dict = {}
        if args.scenario != "cold":
            from bhype_testimages.tiny_image import tiny_guest_image

            guest = tiny_guest_image()
            for templates in roots:
                (templates / "tiny.toml").write_text(guest.template_toml())
            sections = {"qemu": {"accel": "tcg"}}
        a = create("a", vm={"templates_dir": str(roots[0]), "stop_timeout": 90}, **sections)
        b = create("b", sshd=True, vm={"templates_dir": str(roots[1]), "stop_timeout": 90}, **sections)
        api = a.api()
        added = wait(api, api.request("POST", "/api/v1/migrate/peers",
                                      {"name": "b", "url": b.url, "token": b.admin_token}))["result"]
        with open(b.authorized_keys, "a") as keys:
            keys.write(added["public_key"] + "\n")
        if args.scenario != "cold":
            from migrate_warm import warm_case

            cases = tuple(c for c in args.warm_cases.split(",") if c)
            warm_rows = warm_case(a, b, wait, fill, args.warm_gib, args.warm_written * MIB, cases)
            print_table(f"warm vs cold move of a running guest writing 1 MiB/s ({args.warm_gib} GiB disk, "
                        f"{args.warm_written} MiB written before; offline = stopped here → registered there, "
                        "every byte checked)", warm_rows)
            if args.scenario == "warm":
                return 0
        wait(api, api.request("POST", "/api/v1/vms", {"name": "big", "template": "bench",
                                                        "spec": {"disks": [{"size": f"{args.gib}G"}]}}))
        image = a.root / "ds" / "vms" / "big" / "disk0.img"
        fill(image, size, written)
        source_sum = sha256(image)

        # The anchor: the same image by hand, same SSH path (bHype's key, the pinned host key).
        data = Path(a.raw_config["core"]["data_dir"]) / "migrate"
        ssh = (f"ssh -i {data / 'id_ed25519'} -o UserKnownHostsFile={data / 'peer-b.known_hosts'} "
               "-o StrictHostKeyChecking=yes -o BatchMode=yes")
        manual = b.root / "manual"
        started = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", a.netns, "rsync", "-a", "--sparse", "-e", ssh, str(image),
                        f"root@{b.address}:{manual}/"], check=True)
        by_hand = time.perf_counter() - started
        assert sha256(manual / "disk0.img") == source_sum, "the hand copy differs"
        subprocess.run(["rm", "-rf", str(manual)], check=True)

        started = time.perf_counter()
        result = wait(api, api.request("POST", "/api/v1/migrate/moves", {"vm": "big", "to": "b"}))["result"]
        moved = time.perf_counter() - started
        assert sha256(b.root / "ds" / "vms" / "big" / "disk0.img") == source_sum, "the moved image differs"
        assert not image.exists(), "the source is still there"
    rows = [
        {"what": "rsync by hand (anchor)", "seconds": f"{by_hand:.1f}",
         "written MiB/s": f"{written / MIB / by_hand:.0f}", "ratio": "1.00"},
        {"what": "bhype move (cold)", "seconds": f"{moved:.1f}",
         "written MiB/s": f"{written / MIB / moved:.0f}", "ratio": f"{moved / by_hand:.2f}"},
    ]
    print_table(f"cold move of a {args.gib} GiB image with {args.written} MiB written "
                f"({result['bytes_sent']} bytes on the wire; every byte checked)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
