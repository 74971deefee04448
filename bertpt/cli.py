"""Command-line plumbing shared by the `bertpt-*` commands: typed dataclass fields as flags, the program
name in usage lines, and one-line refusals of unknown flags.

Each command's settings are one dataclass whose field help strings are its `--help` text, parsed by
`transformers.HfArgumentParser` (the parser Hugging Face's own scripts use; `bertpt-export` uses a plain
`argparse.ArgumentParser`). Every command builds its parser with `parser_options(command)` and parses with
`parse(parser, argv)`:

- the program name is the command as the user typed it (`prog`): `bertpt-prepare`, `python -m bertpt.prepare`,
  or the script's path under `deepspeed bertpt/pretrain.py`;
- argparse's prefix matching is off (`allow_abbrev=False`), so `--max_ste 5` is not quietly taken as
  `--max_steps 5`;
- an unknown or misspelled flag is a `BertptError` naming it and the closest valid flag (difflib), which the
  command's `bertpt.errors.exit_on_error` prints as one line with exit status 2 (argparse's usage-error status).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import sys
from dataclasses import field
from pathlib import Path
from typing import Any

from bertpt.errors import BertptError

PACKAGE_DIR = Path(__file__).resolve().parent


def arg(default: Any, help: str, **kw: Any):
    """A dataclass field that is also a flag: `default`, `help` (the --help text) and any further
    argparse keyword (e.g. `choices`). A list default is copied per instance."""
    value = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return field(**value, metadata={"help": help, **kw})


def refuse_nan(config: Any) -> None:
    """Raise BertptError naming the first float field of the dataclass `config` that is NaN: argparse's
    `float` accepts "nan", and every comparison with NaN is False, so range checks alone let it through."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and math.isnan(value):
            raise BertptError(f"--{f.name} must be a number (got nan)")


def prog(command: str) -> str:
    """The command the user typed, for usage lines: `python -m bertpt.X` when run as a module (`__main__`'s
    module spec names a bertpt module), the script's path as given when a bertpt/*.py file was run as a
    script (`deepspeed bertpt/pretrain.py`, `python bertpt/pretrain.py`), else `command` (the console script,
    or a call from Python)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.split(".")[0] == "bertpt":
        return f"python -m {spec.name.removesuffix('.__main__')}"
    script = sys.argv[0] if sys.argv else ""
    if script.endswith(".py") and Path(script).resolve().parent == PACKAGE_DIR:
        return script
    return command


def parser_options(command: str) -> dict[str, Any]:
    """Keyword arguments for every command's `argparse.ArgumentParser` (or `HfArgumentParser`): the program
    name (`prog(command)`), no prefix abbreviations, and a bad value raised to `parse` (one line) instead of
    argparse printing the whole usage."""
    return {"prog": prog(command), "allow_abbrev": False, "exit_on_error": False}


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> tuple:
    """Parse `argv` (default: sys.argv[1:]) strictly. Returns `parse_args_into_dataclasses`' tuple for an
    `HfArgumentParser` (the dataclasses, then a Namespace of any other flags), else `(Namespace,)`.
    Raises BertptError for any argument the parser does not know (see `unknown_arguments`), before a
    dataclass is built, and for a bad value (an invalid choice, a number that is not one); a missing
    required argument still exits 2 with argparse's usage."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        _, rest = parser.parse_known_args(args)
    except argparse.ArgumentError as e:  # a bad value (exit_on_error=False): one line, not the whole usage
        raise BertptError(f"{e}; see {parser.prog} --help") from None
    if rest:
        raise BertptError(unknown_arguments(parser, rest))
    if hasattr(parser, "parse_args_into_dataclasses"):
        return parser.parse_args_into_dataclasses(args=args)
    return (parser.parse_args(args),)


def unknown_arguments(parser: argparse.ArgumentParser, rest: list[str]) -> str:
    """One line naming the arguments `parser` left over (`rest`, from parse_known_args) and, for each
    unknown flag, the closest valid flag if there is one (difflib.get_close_matches, its default cutoff)."""
    flags = sorted({s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"})
    said = []
    for text in rest:
        if text.startswith("-") and len(text) > 1 and not _is_number(text):
            name = text.split("=", 1)[0]
            close = difflib.get_close_matches(name, flags, n=1)
            said.append(f"unknown flag {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    if not said:
        said.append(f"unexpected argument{'s' if len(rest) > 1 else ''} {' '.join(rest)}")
    return f"{'; '.join(said)}; see {parser.prog} --help"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
