"""Dashboards through DeepSpeed's monitor: the DeepSpeed JSON's "tensorboard", "wandb", "csv_monitor" and
"comet" sections (deepspeed/monitor/config.py) decide where bertpt's scalars go; DeepSpeed's MonitorMaster
(deepspeed/monitor/monitor.py) writes them. A JSON without such sections writes no dashboard (the JSON is
the one home of run configuration); <output_dir>/metrics.jsonl is written either way (bertpt.metrics).

    monitor = open_monitor(ds_config, output_dir)   # rank 0, after deepspeed.comm is initialised
    write_scalars(monitor, [("train/loss", 2.3, 10)])

Why bertpt builds the MonitorMaster from the sections itself and hands the engine the JSON without them
(`without_monitors`): with a monitor enabled, DeepSpeed's engine writes its own "Train/Samples/lr" (and
"loss_scale") after every optimizer step with the number of *samples* as the step (engine.py, `step`).
W&B accepts only increasing steps in a run and drops a point whose step is below the last one (wandb.log's
rule), so bertpt's scalars, indexed by optimizer step like every BERT recipe's, would be silently dropped
behind the engine's sample counts. bertpt logs the learning rate and loss scale itself (train/lr,
train/loss_scale), at the same step as everything else.

W&B (DeepSpeed's WandbMonitor calls wandb.init(project, group, entity) and nothing else): one W&B run per
output directory. Its id is kept in <output_dir>/wandb_run_id and passed with wandb's documented
environment variables, WANDB_RUN_ID and WANDB_RESUME=allow, so a resumed or requeued job continues the
same run; wandb's local files go under <output_dir>/wandb (WANDB_DIR). Variables the user set win.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Iterable
from pathlib import Path

from bertpt.errors import BertptError
from bertpt.files import write_atomic

SECTIONS = ("tensorboard", "wandb", "csv_monitor", "comet")  # deepspeed.monitor.config.get_monitor_config's keys
RUN_ID_FILE = "wandb_run_id"  # in the output directory: the W&B run every job of this directory continues
_ID_CHARS = string.ascii_lowercase + string.digits  # W&B's own run ids are 8 of these


def enabled_sections(ds_config: dict) -> list[str]:
    """The monitor sections of `ds_config` (a DeepSpeed JSON as a dict) that say "enabled": true."""
    return [s for s in SECTIONS if (ds_config.get(s) or {}).get("enabled") is True]


def without_monitors(ds_config: dict) -> dict:
    """`ds_config` without its monitor sections: the JSON the engine is built with (see the module docstring)."""
    return {k: v for k, v in ds_config.items() if k not in SECTIONS}


def wandb_run_id(output_dir: str | Path) -> str:
    """The W&B run id of `output_dir`: the one in <output_dir>/wandb_run_id, else a new random one (8 of
    [a-z0-9], W&B's form) written there atomically. Raises OSError: the directory is not writable."""
    path = Path(output_dir) / RUN_ID_FILE
    if path.is_file():
        stored = path.read_text().strip()
        if stored:
            return stored
    run_id = "".join(secrets.choice(_ID_CHARS) for _ in range(8))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, run_id + "\n")
    return run_id


def wandb_environment(output_dir: str | Path, run_id: str | None) -> dict[str, str]:
    """The wandb variables to set before wandb.init, those the environment does not set already:
    WANDB_RUN_ID (`run_id`; None: none), WANDB_RESUME "allow" with it, WANDB_DIR `output_dir`."""
    wanted = {"WANDB_DIR": str(output_dir)}
    if run_id is not None:
        wanted |= {"WANDB_RUN_ID": run_id, "WANDB_RESUME": "allow"}
    return {k: v for k, v in wanted.items() if not os.environ.get(k)}


def open_monitor(ds_config: dict, output_dir: str | Path, continue_wandb_run: bool = True):
    """DeepSpeed's MonitorMaster for the monitor sections of `ds_config` (its "auto" paths resolved,
    bertpt.config.resolve_auto), or None when no section is enabled. Call it on rank 0 only, once
    deepspeed.comm is initialised (the monitors ask it for the rank). With "wandb" enabled it first sets
    the wandb variables (`wandb_environment`; `continue_wandb_run`: one run id per `output_dir`, else a new
    run each call). Raises BertptError: a section DeepSpeed rejects, or a backend's package not installed."""
    if not enabled_sections(ds_config):
        return None
    from deepspeed.monitor.config import get_monitor_config
    from deepspeed.monitor.monitor import MonitorMaster

    try:
        config = get_monitor_config(ds_config)
    except Exception as e:  # noqa: BLE001 -- pydantic's validation errors
        raise BertptError(f"DeepSpeed JSON: a monitor section is invalid ({' '.join(str(e).split())})") from None
    if config.wandb.enabled:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        os.environ.update(wandb_environment(output_dir, wandb_run_id(output_dir) if continue_wandb_run else None))
    try:
        return MonitorMaster(config)
    except ImportError as e:
        raise BertptError(
            f"the DeepSpeed JSON enables a monitor whose package is not installed ({e}); install it (W&B: "
            '`pip install "bertpt[wandb]"`) or disable its section'
        ) from None


def write_scalars(monitor, events: Iterable[tuple[str, float, int]]) -> None:
    """Write (tag, value, step) scalars through `monitor` (open_monitor's; None: nowhere)."""
    events = list(events)
    if monitor is not None and events:
        monitor.write_events(events)
