"""Failing test from break14 (a new user's trial of issue 14's gpu_check): reproduce, do not fix."""

from __future__ import annotations

import sys

from tests.helpers import REPO, run

SCRIPT = str(REPO / "benchmarks" / "gpu_check.py")


def test_an_unwritable_out_dir_is_one_usage_error(tmp_path):
    """`--out_dir` under a regular file: today a Python traceback (NotADirectoryError from out.mkdir) and exit 1,
    the status the docs reserve for a correctness failure; a user expects one `gpu_check: error:` line, exit 2."""
    (tmp_path / "afile").write_text("")
    cmd = [sys.executable, SCRIPT, "--device", "cpu", "--quick", "--only", "env", "--out_dir", str(tmp_path / "afile" / "gc")]
    proc = run(cmd, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "gpu_check: error:" in proc.stderr, proc.stderr[-2000:]
