"""``make bench``: runs every ``benchmarks/bench_*.py`` in turn; each prints a table of
medians and writes JSON under the output folder."""

import argparse
import subprocess
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("only", nargs="*", help="run only these bench names (e.g. model node)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scripts = sorted(Path(__file__).parent.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    failures = 0
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        result = subprocess.run([sys.executable, str(script), "--out", str(args.out)])
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
