"""Command-line plumbing shared by the `bertpt-*` commands: typed dataclass fields as flags.

Each command's settings are one dataclass whose field help strings are its `--help` text, parsed by
`transformers.HfArgumentParser` (the parser Hugging Face's own scripts use).
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def arg(default: Any, help: str, **kw: Any):
    """A dataclass field that is also a flag: `default`, `help` (the --help text) and any further
    argparse keyword (e.g. `choices`). A list default is copied per instance."""
    value = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return field(**value, metadata={"help": help, **kw})
