"""`bertpt-bench` / `python -m bertpt.bench`: parse the flags, then run one comparison or the ZeRO sweep.

The benchmark's one entry point: throughput.py holds the flags and one run; sweep.py (which takes those flags)
launches one `python -m bertpt.bench` child per (JSON, world size). Only this module imports both, and neither
imports it, so the package has no import circle.
"""

from __future__ import annotations

from bertpt.bench.sweep import sweep
from bertpt.bench.throughput import parse_args, run
from bertpt.errors import exit_on_error


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark with `argv` (default: sys.argv[1:]); errors print one line and exit 2 (exit_on_error)."""
    with exit_on_error("bertpt-bench"):
        bc = parse_args(argv)
        if bc.zero_sweep:
            sweep(bc)
        else:
            run(bc)


if __name__ == "__main__":
    main()
