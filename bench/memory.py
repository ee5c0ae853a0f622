"""Peak memory of a large run: 200,000 rows through the bundled recipe with the offline model.

The CLI reads and writes in chunks, so memory stays bounded whatever the input size. The
run happens in a child process; its peak resident memory is printed next to the peak of
an import-only child (the baseline), so the figure is what the rows themselves cost.

    python bench/memory.py              # 200,000 rows
    python bench/memory.py --rows 20000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_mib(command: list[str]) -> tuple[float, float]:
    """Run *command*; return its peak resident memory (MiB) and wall time (s)."""
    started = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {command}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source, output = Path(folder) / "docs.jsonl", Path(folder) / "out.parquet"
        with source.open("w") as handle:
            for i in range(args.rows):
                text = f"Document {i}: rivers carve valleys, glaciers move slowly, deltas form at mouths."
                handle.write(json.dumps({"input": text}) + "\n")
        baseline, _ = peak_mib([sys.executable, "-c", "import promptflow_dsl.cli, polars"])
        command = [
            sys.executable,
            "-m",
            "promptflow_dsl",
            "run",
            str(ROOT / "recipes" / "self_instruct.py"),
            "-i",
            str(source),
            "-o",
            str(output),
            "--no-progress",
        ]
        peak, seconds = peak_mib(command)
    print(
        f"{args.rows:,} rows, offline model: peak {peak:.0f} MiB "
        f"(import-only baseline {baseline:.0f} MiB) in {seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
