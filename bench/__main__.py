"""Every benchmark, each printing its figures next to a baseline measured in the same run.

python -m bench            # the full suite (several minutes, PostgreSQL + wrk)
python -m bench --smoke    # tiny data, short runs: proves the benchmarks still work
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "bench.poll",
    "bench.latency",
    "bench.ingest",
    "bench.statements",
    "bench.inprocess",
    "bench.ids",
)


def main() -> int:
    extra = sys.argv[1:]
    failed = 0
    for module in BENCHMARKS:
        print(f"\n=== {module} {' '.join(extra)}", flush=True)
        result = subprocess.run([sys.executable, "-m", module, *extra], check=False)  # noqa: S603
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
