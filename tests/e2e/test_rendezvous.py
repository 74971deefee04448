"""A rendezvous that cannot be reached, or a port already taken: one clear line within the bound,
never a hang (plain python with the variables a launcher would set)."""

from __future__ import annotations

import socket
import time

import pytest

from tests.helpers import ds_config, free_port, python_cmd, run, train_args

pytestmark = pytest.mark.slow


def test_unreachable_rendezvous_fails_within_the_timeout(tiny_data, tmp_path):
    port = free_port()  # nobody listens there: rank 0 never started
    t0 = time.time()
    proc = run(
        python_cmd(
            *train_args(
                tiny_data, tmp_path / "run", ds_config(tmp_path, "zero2", "fp32"), 2, "--rendezvous_timeout", "4"
            )
        ),
        check=False,
        env={
            "RANK": "1",
            "WORLD_SIZE": "2",
            "LOCAL_RANK": "0",
            "LOCAL_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        },
    )
    elapsed = time.time() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "bertpt-pretrain: error: rank 1 cannot reach the rendezvous at "
        f"127.0.0.1:{port} (MASTER_ADDR:MASTER_PORT) within 4 s (Connection refused)"
    ), last
    assert "Traceback" not in proc.stderr
    assert elapsed < 60  # start-up (imports) + the 4 s bound; torch alone would wait 30 minutes


def test_a_master_port_in_use_is_one_line(tiny_data, tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run(
            python_cmd(*train_args(tiny_data, tmp_path / "run", ds_config(tmp_path, "zero2", "fp32"), 2)),
            check=False,
            env={
                "RANK": "0",
                "WORLD_SIZE": "1",
                "LOCAL_RANK": "0",
                "LOCAL_SIZE": "1",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
            },
        )
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"bertpt-pretrain: error: MASTER_PORT {port} is already in use on this node"), last
    assert "Traceback" not in proc.stderr
