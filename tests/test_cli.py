"""Every bertpt command's flags (bertpt/cli.py): an unknown or misspelled flag is one line naming it and the
closest valid flag, exit 2, no traceback; no silent prefix abbreviations; usage names the command as typed.

The real commands run as subprocesses, as console scripts and as `python -m`, with this checkout first on
the path (launch_env)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bertpt.ckpt.export import main as export_main
from bertpt.cli import parse, unknown_arguments
from bertpt.config import parse_args
from bertpt.errors import BertptError

from .helpers import PRETRAIN, REPO, launch_env, one_error_line

DS = "ds_configs/zero2.json"

# (console script, module, a misspelled flag and its value, the flag it should suggest)
COMMANDS = [
    # the issue's --bogus (no close flag) and a typo, both named in the one line
    ("bertpt-pretrain", "bertpt.pretrain", ["--deepspeed_config", DS, "--bogus", "5", "--max_ste", "5"], "--max_steps"),
    ("bertpt-prepare", "bertpt.prepare", ["corpus.txt", "--outptu_dir", "data"], "--output_dir"),
    ("bertpt-export", "bertpt.export", ["ckpt", "out", "--tga", "step_000002"], "--tag"),
    ("bertpt-bench", "bertpt.bench", ["--stepz", "3"], "--steps"),
]


def command(console: str, module: str, how: str) -> tuple[list[str], str]:
    """The argv prefix that runs a command `how` ("console" or "module") and the name its usage must show."""
    if how == "console":
        return [console], console
    return [sys.executable, "-m", module], f"python -m {module}"


def call(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, env=launch_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("how", ["console", "module"])
@pytest.mark.parametrize("console, module, args, suggestion", COMMANDS)
def test_a_misspelled_flag_is_one_line_with_the_closest_flag(console, module, args, suggestion, how):
    argv, typed = command(console, module, how)
    wrong = args[-2]
    proc = call([*argv, *args])
    line = one_error_line(proc, f"unknown flag {wrong} (did you mean {suggestion}?)", prog=console)
    assert line.endswith(f"; see {typed} --help")
    assert "usage:" not in proc.stderr and "HfArgumentParser" not in proc.stderr  # not argparse's block, nor HF's
    if "--bogus" in args:
        assert line.split(": error: ")[1].startswith("unknown flag --bogus; unknown flag --max_ste (did you mean")


@pytest.mark.parametrize(
    "argv, typed",
    [
        ([sys.executable, "-m", "bertpt.prepare", "--help"], "python -m bertpt.prepare"),
        ([sys.executable, PRETRAIN, "--help"], PRETRAIN),
    ],
)
def test_usage_names_the_command_as_typed(argv, typed):
    """--help's usage line (the misspelled-flag test above checks every command's name, both ways, in its hint)."""
    proc = call(argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: {typed} [-h]"), proc.stdout[:300]


@pytest.mark.slow  # a launcher start (seconds of imports per process), though it trains nothing
def test_under_the_deepspeed_launcher_its_local_rank_parses_and_a_typo_is_still_one_line():
    """deepspeed appends --local_rank=0: with abbreviations off it must still parse, so the only error is the typo."""
    proc = call(["deepspeed", "--num_gpus", "1", "bertpt/pretrain.py", "--deepspeed_config", DS, "--max_ste", "5"])
    line = one_error_line(proc, "unknown flag --max_ste (did you mean --max_steps?)")
    assert line.endswith("; see bertpt/pretrain.py --help") and "local_rank" not in line


def test_no_prefix_abbreviations_and_every_unknown_flag_is_named():
    with pytest.raises(BertptError) as e:
        parse_args(["--deepspeed_config", DS, "--max_ste", "5", "--eval_step=3", "--sed", "1"])
    message = str(e.value)
    assert "unknown flag --max_ste (did you mean --max_steps?)" in message
    assert "unknown flag --eval_step (did you mean --eval_steps?)" in message
    assert "unknown flag --sed (did you mean --seed?)" in message
    assert "\n" not in message
    cfg, _ = parse_args(["--deepspeed_config", DS, "--max_steps", "5", "--local_rank=1"])  # exact names still parse
    assert cfg.max_steps == 5


def test_a_stray_positional_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        export_main([str(tmp_path), str(tmp_path / "out"), "third"])
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith("bertpt-export: error: unexpected argument third; see ")


def test_unknown_arguments_on_a_plain_parser():
    import argparse

    parser = argparse.ArgumentParser(prog="tool", allow_abbrev=False)
    parser.add_argument("--output_dir")
    parser.add_argument("--num_workers", type=int)
    assert unknown_arguments(parser, ["--num_worker", "3"]) == (
        "unknown flag --num_worker (did you mean --num_workers?); see tool --help"
    )
    assert unknown_arguments(parser, ["extra"]) == "unexpected argument extra; see tool --help"
    assert unknown_arguments(parser, ["--zzz", "-5"]) == "unknown flag --zzz; see tool --help"  # -5 is a value
    (ns,) = parse(parser, ["--num_workers", "3"])
    assert ns.num_workers == 3
    with pytest.raises(BertptError, match="unknown flag --num_w "):
        parse(parser, ["--num_w", "3"])  # a prefix is not taken as --num_workers


@pytest.mark.parametrize(
    "argv, expected",
    [
        # an invalid choice and an invalid number: argparse's own message, as one line instead of its usage block
        (["--deepspeed_config", DS, "--on_divergence", "rolback"], "invalid choice: 'rolback'"),
        (["--deepspeed_config", DS, "--collective_timeout_minutes", "abc"], "invalid float value: 'abc'"),
        # values argparse accepts but no run can use: NaN passes every range check, inf overflows a timedelta
        (["--deepspeed_config", DS, "--loss_spike_factor", "nan"], "--loss_spike_factor must be a number (got nan)"),
        (["--deepspeed_config", DS, "--collective_timeout_minutes", "inf"], "must be positive and finite (got inf)"),
    ],
)
def test_a_bad_value_is_one_line(argv, expected):
    with pytest.raises(BertptError) as e:
        parse_args(argv)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_a_bad_value_from_the_console_is_one_line_exit_2():
    proc = call(["bertpt-prepare", "corpus.txt", "--output_dir", "data", "--chunk_mb", "nan"])
    one_error_line(proc, "--chunk_mb must be a number (got nan)", prog="bertpt-prepare")
    assert "usage:" not in proc.stderr
