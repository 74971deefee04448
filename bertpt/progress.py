"""Progress of long work that is not training (preparing data): a tqdm bar on a terminal, plain lines in a log.

In a log file (SLURM, nohup, CI) tqdm's carriage returns would make one ever-growing line. When stderr
is not a terminal, `bar` keeps tqdm's own formatting (counts, rate, elapsed, postfix) but writes it as a
whole line at most every `LOG_EVERY_S` seconds, and once more when the work ends. (Training's progress is
bertpt.metrics.Reporter's: one line per --log_steps.)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

LOG_EVERY_S = 30.0  # a line every 30 s: a 10-minute preparation leaves ~20 lines in the log


class _Lines:
    """A text stream for tqdm that turns each carriage-return redraw into one plain line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, s: str) -> None:
        text = s.replace("\r", "").rstrip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def bar(iterable: Iterable | None = None, *, enabled: bool = True, stream=None, **kw: Any) -> tqdm:
    """A tqdm progress bar over `iterable` (or updated by hand) on `stream` (default sys.stderr), taking
    tqdm's keywords (`desc`, `unit`, `total`, `unit_scale`); `enabled` False: silent. On a stream that is
    not a terminal: plain lines, one every LOG_EVERY_S seconds and one at the end."""
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return tqdm(iterable, disable=True, **kw)
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(iterable, file=stream, dynamic_ncols=True, **kw)
    return tqdm(iterable, file=_Lines(stream), mininterval=LOG_EVERY_S, ncols=200, **kw)
