"""Run every benchmark (or the ones named) and print their tables: ``./dev bench [name ...]``.

Each ``bench_*.py`` beside this file is a script with a ``main()`` that measures and prints
its own table through :mod:`report`; they run one after another, each in its own process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        wanted = {n.removeprefix("bench_").removesuffix(".py") for n in names}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
        if not scripts:
            print(f"no benchmark named {', '.join(sorted(wanted))}", file=sys.stderr)
            return 2
    failed = 0
    for script in scripts:
        print(f"\n# {script.stem}", flush=True)
        failed += subprocess.run([sys.executable, str(script)], cwd=HERE).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
