"""Run every benchmark (or the ones named) and print their tables:
``./dev bench [name ...] [--option value ...]``.

Each ``bench_*.py`` beside this file is a script with a ``main()`` that measures and prints
its own table through :mod:`report`; they run one after another, each in its own process.
Everything from the first argument that starts with ``-`` on is passed to each named script
(``./dev bench migrate --scenario warm``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def split_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """(benchmark names, options for each of them): the options start at the first ``-`` argument."""
    for index, argument in enumerate(argv):
        if argument.startswith("-"):
            return argv[:index], argv[index:]
    return argv, []


def main(argv: list[str]) -> int:
    names, options = split_arguments(argv)
    if options and not names:
        print("options are passed to the benchmarks named before them: name one", file=sys.stderr)
        return 2
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
        failed += subprocess.run([sys.executable, str(script), *options], cwd=HERE).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
