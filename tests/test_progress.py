"""bertpt.progress: a tqdm bar on a terminal, plain lines in a log file."""

from __future__ import annotations

import io

from bertpt import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_plain_lines_and_the_final_count():
    log = io.StringIO()
    for _ in progress.bar((i for i in range(1000)), desc="prepare", unit=" docs", stream=log):
        pass
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # the first redraw and the final one (the rest fall inside LOG_EVERY_S)
    assert 1 <= len(lines) <= 3 and lines[-1].startswith("prepare: 1000 docs [")


def test_a_terminal_gets_tqdm_redraws_and_disabled_is_silent():
    tty = Terminal()
    for _ in progress.bar((i for i in range(50)), desc="prepare", unit=" docs", stream=tty):
        pass
    assert "\r" in tty.getvalue() and "prepare: 50 docs" in tty.getvalue().split("\r")[-1]
    quiet = io.StringIO()
    for _ in progress.bar(range(50), desc="prepare", stream=quiet, enabled=False):
        pass
    assert quiet.getvalue() == ""
