"""User errors: one line, exit status 2; a rank other than 0 waits for rank 0 to say it, then says it."""

from __future__ import annotations

import socket

import pytest

from bertpt import errors
from bertpt.errors import BertptError, RankError, exit_on_error, process_rank

RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID")


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    for var in RANK_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(errors, "OTHER_RANKS_DELAY_S", 0.0)


def fail(exc: Exception, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        with exit_on_error("bertpt-x"):
            raise exc
    return e.value.code, capsys.readouterr().err


def test_rank_0_prints_one_line(capsys):
    assert fail(BertptError("bad flag"), capsys) == (2, "bertpt-x: error: bad flag\n")


def test_another_rank_names_itself_so_an_error_only_it_hits_is_not_lost(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "3")
    assert fail(BertptError("--data /x: no such directory"), capsys) == (
        2,
        f"bertpt-x (rank 3 on {socket.gethostname()}): error: --data /x: no such directory\n",
    )


def test_rank_errors_print_at_once_on_every_rank(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(errors, "OTHER_RANKS_DELAY_S", 60.0)  # would hang the test if waited on
    assert fail(RankError("cannot reach"), capsys) == (2, "bertpt-x: error: cannot reach\n")


@pytest.mark.parametrize("var", RANK_VARS)
def test_process_rank_from_any_launcher(monkeypatch, var):
    assert process_rank() == 0
    monkeypatch.setenv(var, "5")
    assert process_rank() == 5
