"""``python -m benchmarks [name ...] [--no-record] [--quick] [--smoke]``: run benchmarks.

Each ``benchmarks/bench_<name>.py`` defines ``run(quick: bool) -> list[Comparison]``; those that
also take ``smoke`` run at tiny sizes with ``--smoke`` (nothing is recorded then). Every result is
printed, then one table of all of them.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

from benchmarks.harness import Comparison, record, table


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {available()}")
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes on any device, nothing recorded (gpu)"
    )
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available()}")
    modules = {name: importlib.import_module(f"benchmarks.bench_{name}") for name in names}
    if args.smoke:
        plain = [
            n for n, m in modules.items() if "smoke" not in inspect.signature(m.run).parameters
        ]
        if plain:
            parser.error(f"--smoke: {plain} have no smoke mode")
    results: list[Comparison] = []
    for module in modules.values():
        kwargs = {"smoke": True} if args.smoke else {}
        for result in module.run(quick=args.quick, **kwargs):
            print(result.summary(), flush=True)
            if not (args.no_record or args.smoke):
                record(result)
            results.append(result)
    print(table(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
