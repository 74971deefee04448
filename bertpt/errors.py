"""User-facing errors: one clear line and a non-zero exit, never a traceback.

Anything the user can fix (a bad flag, a missing file, a data dir that does not fit the model)
raises `BertptError`. Entry points wrap their body in `exit_on_error`, which prints the message as
one line (on rank 0 only when several ranks would print the same thing) and exits with status 2.
Unexpected exceptions still show their traceback: those are bugs and need it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

EXIT_USER_ERROR = 2


class BertptError(Exception):
    """Something the user can fix; the message says what is wrong and what to do."""

    every_rank = False  # True: a failure of this rank alone (e.g. it cannot reach rank 0), printed by it


class RankError(BertptError):
    """A user-fixable failure that other ranks do not share, so every rank that hits it says so."""

    every_rank = True


@contextlib.contextmanager
def exit_on_error(prog: str):
    try:
        yield
    except BertptError as e:
        # Every rank validates the same inputs and raises the same error: print it once.
        if os.environ.get("RANK", "0") == "0" or e.every_rank:
            print(f"{prog}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)


def require_writable_dir(path: Path, flag: str) -> None:
    """Create `path` if needed and prove it writable now, before hours of work go into it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise BertptError(f"{flag} {path}: not writable ({e.strerror})") from None
