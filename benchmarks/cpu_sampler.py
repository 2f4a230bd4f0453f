"""Where a long-running bHype process spends its CPU (issue 15): runs ``bhype ARGS…`` in this
process with a sampling thread that, every ``--every`` seconds, charges each thread's CPU time
used since the previous look (its ``pthread_getcpuclockid`` clock) to that thread's current
Python stack. Unlike cProfile it sees every thread (the in-process worker, the samplers), costs
little, and counts CPU, not wall time: a thread asleep in ``select`` costs nothing. Time spent
in C (SQLite, JSON) is charged to the Python frame that called it.

Not a benchmark (nothing is compared). The report (the hottest stacks by inclusive and by
own CPU) is rewritten to ``OUT`` every 10 s, so a killed process still leaves one.

Run: ``.venv/bin/python benchmarks/cpu_sampler.py OUT [--delay S] [--every S] -- --config C serve``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
from pathlib import Path
from types import FrameType


def where(frame: FrameType) -> str:
    code = frame.f_code
    name = code.co_filename
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in name:
            name = name.split(marker, 1)[1]
            break
    return f"{name}:{code.co_name}"


def stack(frame: FrameType | None) -> tuple[str, ...]:
    found = []
    while frame is not None:
        found.append(where(frame))
        frame = frame.f_back
    return tuple(reversed(found))


class CpuSampler:
    """Per-thread CPU deltas charged to stacks."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
        self.last: dict[int, float] = {}
        self.began = time.monotonic()
        self.total = 0.0
        # Per wall-clock second: its stacks (the report shows the busiest seconds: the spikes).
        self.seconds: dict[int, collections.Counter[tuple[str, ...]]] = collections.defaultdict(collections.Counter)

    def look(self) -> None:
        me = threading.get_ident()
        frames = sys._current_frames()
        for ident, frame in frames.items():
            if ident == me:
                continue
            try:
                used = time.clock_gettime(time.pthread_getcpuclockid(ident))
            except OSError:  # ended meanwhile
                continue
            before = self.last.get(ident)
            self.last[ident] = used
            if before is not None and used > before:
                frames = stack(frame)
                self.stacks[frames] += used - before
                self.seconds[int(time.monotonic() - self.began)][frames] += used - before
                self.total += used - before

    def report(self, path: Path, top: int = 40) -> None:
        seconds = max(1e-9, time.monotonic() - self.began)
        inclusive: collections.Counter[str] = collections.Counter()
        own: collections.Counter[str] = collections.Counter()
        for frames, cpu in self.stacks.items():
            for name in set(frames):
                inclusive[name] += cpu
            if frames:
                own[frames[-1]] += cpu
        share = 100 * self.total / seconds
        lines = [f"CPU sampled {self.total:.2f} s over {seconds:.0f} s wall ({share:.2f}% of a core)", "", "inclusive:"]
        lines += [f"{cpu:8.3f} s {100 * cpu / seconds:6.2f}%  {name}" for name, cpu in inclusive.most_common(top)]
        lines += ["", "own:"]
        lines += [f"{cpu:8.3f} s {100 * cpu / seconds:6.2f}%  {name}" for name, cpu in own.most_common(top)]
        lines += ["", "stacks:"]
        for frames, cpu in self.stacks.most_common(25):
            lines.append(f"{cpu:8.3f} s  " + " ; ".join(frames[-12:]))
        busiest = sorted(self.seconds.items(), key=lambda item: -sum(item[1].values()))[:3]
        for second, stacks in busiest:
            lines += ["", f"second {second}: {100 * sum(stacks.values()):.1f}% of a core"]
            for frames, cpu in stacks.most_common(8):
                lines.append(f"{cpu:8.3f} s  " + " ; ".join(frames[-8:]))
        path.write_text("\n".join(lines) + "\n")


def run(out: Path, delay: float, every: float) -> None:
    time.sleep(delay)
    sampler = CpuSampler(every)
    written = time.monotonic()
    while True:
        time.sleep(every)
        sampler.look()
        if time.monotonic() - written > 10:
            sampler.report(out)
            written = time.monotonic()


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before sampling starts")
    parser.add_argument("--every", type=float, default=0.005, help="seconds between looks")
    args = parser.parse_args(argv[:split])
    threading.Thread(target=run, args=(args.out, args.delay, args.every), daemon=True, name="cpu-sampler").start()
    from bhype_core.cli import main as bhype

    sys.argv = ["bhype", *argv[split + 1:]]
    return bhype()


if __name__ == "__main__":
    sys.exit(main())
