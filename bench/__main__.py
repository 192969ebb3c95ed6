"""``python -m bench [--smoke] [name ...]``: run benchmarks, print markdown tables."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench import BENCHES


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (all by default) and print their tables."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="run each benchmark briefly")
    parser.add_argument("names", nargs="*", metavar="name", help=f"one of {BENCHES}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {BENCHES}")
    for name in args.names or BENCHES:
        started = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        for table in module.run(args.smoke):
            print(table.markdown())
        print(f"_{name}: {time.monotonic() - started:.1f}s{' (smoke)' if args.smoke else ''}_\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
