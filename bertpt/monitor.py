"""Dashboards through DeepSpeed's monitor: the DeepSpeed JSON's "tensorboard", "wandb", "csv_monitor" and
"comet" sections (deepspeed/monitor/config.py) decide where bertpt's scalars go; DeepSpeed's MonitorMaster
(deepspeed/monitor/monitor.py) writes them. A JSON without such sections writes no dashboard (the JSON is
the one home of run configuration); <output_dir>/metrics.jsonl is written either way (bertpt.metrics).

    monitor = open_monitor(ds_config, output_dir)   # rank 0, after deepspeed.comm is initialised
    write_scalars(monitor, [("train/loss", 2.3, 10)])
    write_job(sections, output_dir, "cola/lr2e-05_seed42", events)   # bertpt-finetune: one finished fine-tune

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

import contextlib
import os
import secrets
import string
from collections.abc import Iterable
from pathlib import Path

from bertpt.errors import BertptError, one_line, require_writable_dir
from bertpt.files import write_atomic

SECTIONS = ("tensorboard", "wandb", "csv_monitor", "comet")  # deepspeed.monitor.config.get_monitor_config's keys
RUN_ID_FILE = "wandb_run_id"  # in the output directory: the W&B run every job of this directory continues
_ID_CHARS = string.ascii_lowercase + string.digits  # W&B's own run ids are 8 of these
# bertpt-finetune without --deepspeed_config: TensorBoard under its --output_dir (tb/<task>/lr<lr>_seed<seed>)
FINETUNE_DEFAULT = {"tensorboard": {"enabled": True, "output_path": "auto"}}
AUTO_PATHS = {"tensorboard": "tb", "csv_monitor": "csv"}  # "auto" output_path -> <output_dir>/<this>


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
    run each call). A CSV file an earlier job of the same directory started gets no second header row.
    Raises BertptError: a section DeepSpeed rejects, a TensorBoard or CSV directory that cannot be created or
    written, a backend's package not installed, or wandb.init failing (e.g. no API key and WANDB_MODE not
    offline)."""
    if not enabled_sections(ds_config):
        return None
    from deepspeed.monitor.config import get_monitor_config
    from deepspeed.monitor.monitor import MonitorMaster

    try:
        config = get_monitor_config(ds_config)
    except Exception as e:  # noqa: BLE001 -- pydantic's validation errors
        raise BertptError(f"DeepSpeed JSON: a monitor section is invalid ({' '.join(str(e).split())})") from None
    for name in AUTO_PATHS:  # before the W&B run id is written: a bad path leaves nothing behind
        section = getattr(config, name)
        if section.enabled:  # DeepSpeed writes to <output_path>/<job_name> (tensorboard.py, csv_monitor.py)
            require_writable_dir(Path(section.output_path) / section.job_name, f"DeepSpeed JSON: {name}.output_path")
    if config.wandb.enabled:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        os.environ.update(wandb_environment(output_dir, wandb_run_id(output_dir) if continue_wandb_run else None))
    try:
        master = MonitorMaster(config)
    except ImportError as e:
        raise BertptError(
            f"the DeepSpeed JSON enables a monitor whose package is not installed ({e}); install it (W&B: "
            '`pip install "bertpt[wandb]"`) or disable its section'
        ) from None
    except Exception as e:  # noqa: BLE001 -- wandb.init's errors, without importing wandb when it is not enabled
        if not (config.wandb.enabled and _is_wandb_error(e)):
            raise
        raise BertptError(
            f"W&B could not start a run ({one_line(e)}); run `wandb login` (or set WANDB_API_KEY), or set "
            "WANDB_MODE=offline to keep the run on disk (`wandb sync` uploads it later)"
        ) from None
    if master.csv_monitor is not None:
        master.csv_monitor.filenames.extend(_csv_files_with_header(master.csv_monitor.log_dir))
    return master


def _is_wandb_error(exc: BaseException) -> bool:
    import wandb.errors

    return isinstance(exc, wandb.errors.Error)


def _csv_files_with_header(log_dir: str | Path) -> list[str]:
    """The CSV monitor files in `log_dir` that an earlier job (a resumed run) started: DeepSpeed's csvMonitor writes
    a `step,<name>` header row the first time its process writes a file, unless the file's stem is in its
    `filenames`, so a resume gets these there and each file keeps its one header."""
    return [p.stem for p in sorted(Path(log_dir).glob("*.csv")) if p.stat().st_size > 0]


def write_scalars(monitor, events: Iterable[tuple[str, float, int]]) -> None:
    """Write (tag, value, step) scalars through `monitor` (open_monitor's; None: nowhere)."""
    events = list(events)
    if monitor is not None and events:
        monitor.write_events(events)


def monitor_sections(ds_config: dict) -> dict:
    """The monitor sections of a DeepSpeed JSON (bertpt.config.read_ds_json's dict), as written."""
    return {s: ds_config[s] for s in SECTIONS if s in ds_config}


def job_config(sections: dict, output_dir: str | Path, job_name: str) -> dict:
    """`sections` for one job of several in `output_dir` (a fine-tune): each section's job_name is `job_name`,
    so that jobs get directories of their own (<output_path>/<job_name>, DeepSpeed's layout), and an "auto"
    output_path is <output_dir>/tb (TensorBoard) or <output_dir>/csv (CSV). Raises BertptError: another
    "auto" value."""
    out = {}
    for name, section in sections.items():
        section = dict(section or {})
        if name in AUTO_PATHS:
            section["job_name"] = job_name
            if section.get("output_path") == "auto":
                section["output_path"] = str(Path(output_dir) / AUTO_PATHS[name])
        bad = [k for k, v in section.items() if v == "auto"]
        if bad:
            raise BertptError(
                f'DeepSpeed JSON: {name}.{bad[0]} is "auto"; only the output_path of '
                'tensorboard and csv_monitor may be "auto"'
            )
        out[name] = section
    return out


def job_dirs(sections: dict, output_dir: str | Path, job_name: str) -> list[Path]:
    """The directories the enabled TensorBoard and CSV sections of `job_config(sections, ...)` write to."""
    config = job_config(sections, output_dir, job_name)
    return [Path(config[s]["output_path"]) / job_name for s in enabled_sections(config) if s in AUTO_PATHS]


def check_sections(sections: dict, output_dir: str | Path) -> None:
    """Judge monitor `sections` (`monitor_sections`; "auto" paths resolved or left for `write_job`) before any
    work, on every rank: DeepSpeed's monitor config parses them and the enabled backends' packages import.
    Raises BertptError naming what is wrong."""
    from deepspeed.monitor.config import get_monitor_config

    config = job_config(sections, output_dir, "check")
    try:
        parsed = get_monitor_config(config)
    except Exception as e:  # noqa: BLE001 -- pydantic's validation errors
        raise BertptError(f"DeepSpeed JSON: a monitor section is invalid ({' '.join(str(e).split())})") from None
    for section, package in (("wandb", "wandb"), ("comet", "comet_ml")):
        if getattr(parsed, section).enabled:
            try:
                __import__(package)
            except ImportError:
                raise BertptError(
                    f'the DeepSpeed JSON enables the "{section}" monitor but {package} is not installed; install it '
                    '(W&B: `pip install "bertpt[wandb]"`) or disable the section'
                ) from None


@contextlib.contextmanager
def _deepspeed_comm():
    """deepspeed.comm over the process group there is (a launcher's), or over a one-process gloo group made
    for the block (DeepSpeed's monitors ask deepspeed.comm for the rank; a plain process has no group)."""
    import deepspeed
    import torch.distributed as dist

    from bertpt.distributed import skip_shm_comm_build

    made = not dist.is_initialized()
    if made:
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        skip_shm_comm_build()  # else DeepSpeed's TorchBackend JIT-compiles an op the monitors never use (~1 min)
        deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False, verbose=False)
        yield dist.get_rank()
    finally:
        if made:
            dist.destroy_process_group()


def write_job(sections: dict, output_dir: str | Path, job_name: str, events: list[tuple[str, float, int]]) -> None:
    """Write one finished job's scalars (a fine-tune: its training curve and scores) to the dashboards of
    `sections` (`monitor_sections`; FINETUNE_DEFAULT for TensorBoard alone), laid out by `job_config`. Every
    call is a W&B run of its own, named `job_name` (WANDB_NAME) and finished here, since W&B keeps one
    increasing step per run and every fine-tune counts from step 0. Rank 0 writes; a no-op with no enabled
    section. Raises BertptError as open_monitor."""
    config = job_config(sections, output_dir, job_name)
    if not enabled_sections(config):
        return
    wandb_on = config.get("wandb", {}).get("enabled") is True
    name_before = os.environ.get("WANDB_NAME")
    with _deepspeed_comm() as rank:
        if rank != 0:
            return
        if wandb_on and name_before is None:
            os.environ["WANDB_NAME"] = job_name
        try:
            monitor = open_monitor(config, output_dir, continue_wandb_run=False)
            write_scalars(monitor, events)
            if monitor is not None and monitor.tb_monitor is not None:
                monitor.tb_monitor.summary_writer.close()  # DeepSpeed's monitor has no close; the file is done
        finally:
            if wandb_on:
                import wandb

                wandb.finish()
                wandb.teardown()  # wandb reads its variables (WANDB_NAME) once per setup: the next job sets up anew
                if name_before is None:
                    os.environ.pop("WANDB_NAME", None)
