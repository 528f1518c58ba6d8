"""Run every benchmark (bench/bench_*.py) and print their tables."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
    only = set(sys.argv[1:])
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem.removeprefix("bench_") not in only:
            continue
        module = importlib.import_module(f"bench.{path.stem}")
        module.main()
        print()


if __name__ == "__main__":
    main()
