"""Pretrain BERT (MLM + NSP, or MLM alone on data prepared with --objective mlm) with DeepSpeed: setup → fit → finish.

    deepspeed bertpt/pretrain.py --deepspeed_config ds_configs/zero2.json [--data DIR --model bert-base ...]

Also runs under torchrun, mpirun and plain `python` (one process). With no --data it trains on the
built-in demo corpus (Python's own documentation), prepared on first use.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, "") and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # run as a script: keep bertpt/'s modules from shadowing top-level ones

import functools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from bertpt import distributed, divergence
from bertpt.ckpt import checkpoint, layout, resume
from bertpt.ckpt.policy import SavePolicy
from bertpt.ckpt.warmstart import init_from, source_model_config
from bertpt.config import DEFAULT_MODEL, PretrainConfig, bf16_is_auto, parse_args, read_ds_json, resolve_auto
from bertpt.data.builtin import builtin_data_dir, prepare_builtin
from bertpt.data.dataset import PretrainingData, StreamSampler, continuation_ids, eval_batches
from bertpt.data.format import Masking, Meta, is_complete, load_meta
from bertpt.data.masking import EVAL_STREAM, TRAIN_STREAM, MaskingCollator, describe_changes, resolve_masking
from bertpt.divergence import EXIT_DIVERGED, Guard
from bertpt.engine import (
    bf16_auto_reason,
    build_engine,
    check_ds_config,
    native_bf16,
    precision_name,
    set_deepspeed_log_level,
)
from bertpt.errors import BertptError, exit_on_error, require_writable_dir
from bertpt.flops import device_name, peak_tflops, step_flops
from bertpt.metrics import Reporter, Sums
from bertpt.model import BertForPreTraining, bert_config, num_parameters
from bertpt.monitor import check_sections, enabled_sections, monitor_sections, open_monitor
from bertpt.optim import check_lamb
from bertpt.preemption import EXIT_PREEMPTED, SignalFlag, ignore_in_workers


@dataclass
class Run:
    """What setup builds and fit advances."""

    cfg: PretrainConfig
    engine: object
    meta: Meta
    masking: Masking  # the effective masking: the data's, or what --masked_lm_prob & co. made of it
    data_dir: Path
    ckpt_dir: Path
    ds_config: dict
    rank: int
    world: int
    step: int
    consumed: int
    train_batches: Iterator[dict]  # endless: the sampler never stops
    eval_loader: DataLoader
    reporter: Reporter
    start_step: int = 0
    last: dict = field(default_factory=dict)  # latest train and eval metrics, for the summary
    signals: SignalFlag | None = None
    saves: SavePolicy | None = None
    preempted: str | None = None  # the signal that stopped the run early
    guard: Guard | None = None  # divergence detection and rollback bookkeeping (divergence.py)
    batches_from: Callable[[int], Iterator[dict]] | None = None  # train batches from a data position
    model_config: dict = field(default_factory=dict)
    diverged: int = 0  # the divergence code that stopped the run (divergence.py; 0: none)
    seconds_before: float = 0.0  # training seconds of the runs this one resumed (RunPosition.train_seconds)
    fit_started: float = 0.0  # time.time() when this process's training loop began


def setup(cfg: PretrainConfig, ds_path: str) -> Run:
    rank, world, local_rank = distributed.init(cfg.rendezvous_timeout, cfg.collective_timeout_minutes)
    from deepspeed.accelerator import get_accelerator

    raw_ds_config, acc = read_ds_json(ds_path), get_accelerator()  # judged first: a bad JSON fails before data work
    bf16_native = native_bf16(acc)
    ds_config = resolve_auto(raw_ds_config, cfg.max_steps, bf16_native, cfg.output_dir)
    bf16_note = f" ({bf16_auto_reason(acc, bf16_native)})" if bf16_is_auto(raw_ds_config) else ""
    check_lamb(ds_config)
    check_ds_config(ds_config, ds_path)
    check_sections(monitor_sections(ds_config), cfg.output_dir)  # e.g. "wandb" without wandb: one line, now
    data_dir = Path(cfg.data) if cfg.data else _builtin_data(local_rank)
    meta = load_meta(data_dir)  # the one read of the data's index; everything below takes it from here
    masking = resolve_masking(
        meta.masking, meta.max_seq_length, cfg.masked_lm_prob, cfg.max_predictions_per_seq, cfg.whole_word_mask
    )
    model_name, model_config = model_config_for(cfg, meta)
    if model_config.max_position_embeddings < meta.max_seq_length:
        raise BertptError(
            f"{data_dir} holds sequences of {meta.max_seq_length} tokens but the model has only "
            f"{model_config.max_position_embeddings} positions; use data prepared with a shorter "
            "--max_seq_length or a model with more max_position_embeddings"
        )
    ckpt_dir = Path(cfg.output_dir) / "checkpoints"
    found = resume.find(cfg.resume, ckpt_dir)
    require_writable_dir(Path(cfg.output_dir), "--output_dir")
    # fits this run? which config and tag (another world size: keep the global batch)?
    plan = resume.plan(found, ds_config, rank, world, model_config.to_dict(), meta.tokenizer_hash, meta.objective)

    seed_everything(cfg.seed)  # identical initial weights on every rank
    model = BertForPreTraining(model_config, gradient_checkpointing=cfg.activation_checkpointing)
    if cfg.init_from:  # weights only, the same on every rank; a checkpoint to resume wins (README)
        init_from(cfg.init_from, model, meta.tokenizer_hash, found, rank)
    n_params = num_parameters(model)  # now: ZeRO-3 partitions the parameters in initialize
    engine = build_engine(model, plan.ds_config)  # DeepSpeed is imported here, after the cheap checks above
    seed_everything(cfg.seed + rank)  # but independent dropout per rank

    step = consumed = 0
    saved_masking, skipped, seconds_before = None, (), 0.0
    if found is not None:
        position, state = resume.load(engine, plan)
        step, consumed, skipped = position.step, position.consumed_samples, position.skipped_samples
        seconds_before = position.train_seconds or 0.0
        if "masking" in state:  # recorded since masking became a training-time choice
            saved_masking = Masking.from_dict(state["masking"])
    if rank == 0:
        checkpoint.write_static_files(
            ckpt_dir, model_config, meta.tokenizer_path(), meta.tokenizer_hash, meta.objective
        )

    micro, accum = engine.train_micro_batch_size_per_gpu(), engine.gradient_accumulation_steps()
    train = PretrainingData(meta, "train")
    whole_words = continuation_ids(meta) if masking.whole_word_mask and not masking.static else None
    batches_from = functools.partial(train_batches, cfg, train, masking, meta, whole_words, micro, accum, world, rank)
    split, eval_note = eval_split(meta)
    held_out = PretrainingData(meta, split)
    eval_loader = DataLoader(
        held_out,
        batch_sampler=eval_batches(len(held_out), cfg.eval_samples, micro, world, rank),
        collate_fn=MaskingCollator(masking, meta.special_ids, meta.vocab_size, cfg.seed, EVAL_STREAM, whole_words),
        generator=torch.Generator().manual_seed(cfg.seed),
    )

    device, precision = device_name(engine.device), precision_name(engine).split()[0]
    peak = cfg.peak_tflops or peak_tflops(device, precision)
    monitor = open_monitor(ds_config, cfg.output_dir) if rank == 0 else None  # the JSON's dashboards, rank 0
    reporter = Reporter(
        rank,
        Path(cfg.output_dir),
        step,
        cfg.max_steps,
        flops=functools.partial(step_flops, model_config),
        peak_tflops=peak,
        world=world,
        monitor=monitor,
    )
    reporter.write(
        f"bertpt: {model_name} ({n_params / 1e6:.1f}M parameters), data {data_dir} "
        f"({len(train)} training instances of {meta.max_seq_length} tokens"
        + ("" if meta.nsp else ", MLM only: no NSP loss")
        + f"), world size {world}, "
        f"global batch {engine.train_batch_size()} = {micro} x {accum} accumulation x {world} ranks, "
        f"ZeRO stage {engine.zero_optimization_stage()}, {precision_name(engine)}{bf16_note}"
        + (", activation checkpointing" if cfg.activation_checkpointing else "")
        + (
            f", masking changed from the data's: {describe_changes(meta.masking, masking)}"
            if masking != meta.masking
            else ""
        )
        + (
            f", MFU against {peak:g} TFLOPS ({device} {precision})"
            if peak
            else f", MFU not shown (no known {precision} peak for {device}; see --peak_tflops)"
        )
        + (f", resumed at step {step} from {found.dir}" if found else "")
        + eval_note
    )
    if saved_masking is not None and saved_masking != masking:
        reporter.write(
            f"bertpt: the masking differs from the checkpoint's: {describe_changes(saved_masking, masking)} "
            "(the data order stays the same)"
        )
    reporter.settings("masking", masking_scalars(masking), step)
    return Run(
        cfg,
        engine,
        meta,
        masking,
        data_dir,
        ckpt_dir,
        ds_config,
        rank,
        world,
        step,
        consumed,
        batches_from(consumed),
        eval_loader,
        reporter,
        start_step=step,
        signals=SignalFlag(),
        saves=SavePolicy(cfg.save_steps, cfg.save_minutes, cfg.keep_last, engine.device),
        guard=Guard(
            engine.device,
            rank,
            cfg.on_divergence,
            cfg.max_rollbacks,
            cfg.max_skipped_steps,
            cfg.loss_spike_factor,
            good=found,
            consumed=consumed,
            skipped=skipped,
            skipped_steps=engine.skipped_steps,
        ),
        batches_from=batches_from,
        model_config=model_config.to_dict(),
        seconds_before=seconds_before,
    )


def train_batches(
    cfg, train, masking, meta, whole_words, micro: int, accum: int, world: int, rank: int, consumed: int
) -> Iterator[dict]:
    """This rank's endless stream of masked training micro-batches from data position `consumed`."""
    sampler = StreamSampler(len(train), micro, accum, world, rank, cfg.seed, consumed)
    # Each loader gets a private generator: starting an iterator draws a seed from it, and drawing
    # from the global one would shift the dropout stream (and break bitwise-exact resume).
    loader = DataLoader(
        train,
        batch_sampler=sampler,
        collate_fn=MaskingCollator(masking, meta.special_ids, meta.vocab_size, cfg.seed, TRAIN_STREAM, whole_words),
        num_workers=cfg.num_workers,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=ignore_in_workers,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    return iter(loader)


def fit(run: Run) -> None:
    engine, cfg, rep = run.engine, run.cfg, run.reporter
    sums = Sums(engine.device, run.meta.nsp)
    run.fit_started = time.time()
    end = min(cfg.max_steps, run.step + cfg.steps_this_run) if cfg.steps_this_run else cfg.max_steps
    while run.step < end:  # a rollback moves run.step back
        step = run.step + 1
        for _ in range(engine.gradient_accumulation_steps()):
            batch = {k: v.to(engine.device, non_blocking=True) for k, v in next(run.train_batches).items()}
            out = engine(**batch)
            out.loss = run.guard.watch(out.loss, step)  # notes a non-finite loss (or makes one: the test hook)
            engine.backward(out.loss)
            engine.step()  # optimizer, LR schedule, clipping, loss scaling: all as the JSON says
            sums.add(out, batch)
        run.step, run.consumed = step, run.consumed + engine.train_batch_size()
        rep.step()
        last = step == end
        if step % cfg.log_steps == 0 or last:
            log_train(run, step, sums)
        # the same on every rank, divergence included, before anything of this step is saved
        decision = run.saves.after_step(step, last, run.signals.raised, run.guard.step_code(engine))
        if decision.diverged:
            if not roll_back(run, decision.diverged):
                run.diverged = decision.diverged
                return
            sums = Sums(engine.device, run.meta.nsp)  # drop the diverged steps' sums
            continue
        with rep.paused():
            if ((cfg.eval_steps and step % cfg.eval_steps == 0) or last) and not decision.stop:
                run.last["eval"] = evaluate(run)
                rep.eval(step, run.last["eval"])
            if decision.save:
                save(run)
        if decision.stop:
            run.preempted = run.signals.signal or "a signal to another rank"
            return


def log_train(run: Run, step: int, sums: Sums) -> None:
    """The train metrics of the last --log_steps steps (collective), and the loss-spike warning."""
    engine, rep = run.engine, run.reporter
    run.last["train"] = m = rep.train(
        step,
        sums.reduce(),
        engine.get_lr()[0],
        engine.get_global_grad_norm(),
        engine.optimizer.loss_scale if engine.fp16_enabled() else None,
    )
    mean = run.guard.spikes.mean()
    ratio = run.guard.spikes.observe(m["loss"])
    if ratio is not None:
        rep.write(
            f"bertpt: warning: loss spike at step {step}: {m['loss']:.4g} is {ratio:.1f}x the mean {mean:.4g} of the "
            f"last logged values (--loss_spike_factor {run.cfg.loss_spike_factor:g})"
        )
        rep.event("divergence", {"loss_spike": ratio}, step)


def roll_back(run: Run, code: int) -> bool:
    """--on_divergence rollback: reload the last good checkpoint, skip the samples since it, rebuild the
    train stream there; one line and the divergence/rollbacks scalar. False: stop instead (not asked
    for, no good checkpoint, or --max_rollbacks spent). Collective."""
    if not run.guard.can_roll_back():
        return False
    diverged_at = run.step
    with run.reporter.paused():
        done = run.guard.roll_back(
            run.engine, run.consumed, run.ds_config, run.rank, run.world, run.model_config, run.meta.tokenizer_hash
        )
        run.train_batches = run.batches_from(run.consumed)  # past the skipped samples
    run.step = done.step
    run.reporter.rewind(done.step)
    run.reporter.write(
        f"bertpt: rollback {done.count} of {run.cfg.max_rollbacks}: step {diverged_at} diverged "
        f"({divergence.describe(code, run.cfg.max_skipped_steps)}); reloaded {done.checkpoint.path}, skipping "
        f"samples {done.first}..{done.end - 1} ({done.end - done.first} samples), continuing after step {done.step}"
    )
    run.reporter.event(
        "divergence", {"rollbacks": done.count, "skipped_first": done.first, "skipped_end": done.end}, diverged_at
    )
    return True


@torch.no_grad()
def evaluate(run: Run) -> dict[str, float]:
    engine = run.engine
    engine.eval()
    sums = Sums(engine.device, run.meta.nsp)
    for batch in run.eval_loader:
        batch = {k: v.to(engine.device) for k, v in batch.items()}
        sums.add(engine(**batch), batch)
    engine.train()
    m = sums.reduce()
    return {k: m[k] for k in ("loss", "mlm_loss", "nsp_loss", "mlm_acc", "nsp_acc") if k in m}  # no nsp_*: MLM only


def save(run: Run) -> None:
    engine = run.engine
    # what this run masked with: a resume compares it
    meta = run.meta
    state = layout.client_state(
        asdict(run.cfg), run.ds_config, meta.tokenizer_hash, masking=asdict(run.masking), objective=meta.objective
    )
    position = layout.RunPosition(
        step=run.step,
        consumed_samples=run.consumed,
        world_size=run.world,
        micro_batch=engine.train_micro_batch_size_per_gpu(),
        grad_accum=engine.gradient_accumulation_steps(),
        global_batch=engine.train_batch_size(),
        zero_stage=engine.zero_optimization_stage(),
        skipped_samples=run.guard.skipped,
        tokens_seen=run.consumed * run.meta.max_seq_length,
        train_seconds=round(run.seconds_before + time.time() - run.fit_started, 3),
    )
    summary = {
        "step": run.step,
        "consumed_samples": run.consumed,
        **{
            f"{split}_{k}": round(v, 4)
            for split, m in run.last.items()
            for k, v in m.items()
            if k in ("mlm_loss", "nsp_loss", "mlm_acc", "nsp_acc")
        },
    }
    tag = checkpoint.save(engine, run.ckpt_dir, position, state, summary)
    run.guard.saved(layout.Checkpoint(run.ckpt_dir, tag), run.consumed)  # saved only when no rank diverged
    run.saves.saved(run.ckpt_dir, run.rank)  # restarts the --save_minutes timer, prunes to --keep_last
    run.reporter.write(f"step {run.step}: saved checkpoint {run.ckpt_dir / tag}")


def stop_diverged(run: Run) -> None:
    """A divergence that is not rolled back: export the last good checkpoint (none: no export), one
    line naming the step and that checkpoint, exit EXIT_DIVERGED. Collective."""
    from bertpt.ckpt.export import export_hf

    good, hf_dir = run.guard.good, Path(run.cfg.output_dir) / "hf"
    if run.rank == 0 and good is not None:
        export_hf(good.dir, hf_dir, good.tag)
    distributed.barrier()
    run.reporter.write(run.guard.stop_line(run.diverged, run.step, str(hf_dir) if good else None))
    run.reporter.close()
    distributed.shutdown()
    sys.exit(EXIT_DIVERGED)


def finish(run: Run, seconds: float) -> None:
    from bertpt.ckpt.export import export_hf

    hf_dir = Path(run.cfg.output_dir) / "hf"
    if run.rank == 0 and layout.published_tags(run.ckpt_dir):
        export_hf(run.ckpt_dir, hf_dir)  # the newest good checkpoint, as a resume would take
    distributed.barrier()
    run.reporter.close()
    if run.rank != 0:
        return
    steps = run.step - run.start_step
    tr, ev, good = run.last.get("train"), run.last.get("eval"), run.guard.good
    lines = [f"bertpt: finished at step {run.step} of {run.cfg.max_steps} ({steps} steps this run, {seconds:.0f} s)"]
    if tr:
        mfu = f", MFU {tr['mfu']:.1%}" if "mfu" in tr else ""
        lines.append(
            f"  train  mlm loss {tr['mlm_loss']:.4f} acc {tr['mlm_acc']:.2%}{nsp_text(tr)} | "
            f"{tr['tokens_per_s']:,.0f} tokens/s, {tr['seq_per_s']:,.1f} sequences/s, "
            f"{tr['tflops']:.3g} TFLOPS per device{mfu} (last {run.cfg.log_steps} steps)"
        )
    if ev:
        on = "" if eval_split(run.meta)[0] == "val" else " (on training instances)"
        lines.append(f"  eval{on}   mlm loss {ev['mlm_loss']:.4f} acc {ev['mlm_acc']:.2%}{nsp_text(ev)}")
    lines += [
        f"  checkpoint   {run.ckpt_dir} (resume: same command, --resume auto is the default)",
        *dashboard_lines(run.ds_config),
        f"  hf export    {hf_dir} (transformers.{'BertForPreTraining' if run.meta.nsp else 'BertForMaskedLM'}"
        ".from_pretrained)"
        + (f", of {good.tag}, the last good checkpoint" if good is not None and good.dir == run.ckpt_dir else ""),
    ]
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------------------------------------


def nsp_text(m: dict[str, float]) -> str:
    """' | nsp loss L acc A' of the summary, '' for MLM-only metrics (they have no NSP figures)."""
    return f" | nsp loss {m['nsp_loss']:.4f} acc {m['nsp_acc']:.2%}" if "nsp_loss" in m else ""


def dashboard_lines(ds_config: dict) -> list[str]:
    """The summary's lines for the dashboards the DeepSpeed JSON enables (bertpt.monitor), e.g.
    "  tensorboard  tensorboard --logdir runs/bertpt/tb"."""
    lines = []
    for section in enabled_sections(ds_config):
        where = ds_config[section].get("output_path") or "(DeepSpeed's default)"
        if section == "tensorboard":
            lines.append(f"  tensorboard  tensorboard --logdir {where}")
        elif section == "csv_monitor":
            lines.append(f"  csv          {Path(where) / ds_config[section].get('job_name', 'DeepSpeedJobName')}")
        else:
            lines.append(f"  {section:<12} project {ds_config[section].get('project') or '(default)'}")
    return lines


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def eval_split(meta: Meta) -> tuple[str, str]:
    """(the split evaluation runs on, a clause for the banner). The held-out split "val" when the data
    has one; else "train", and the clause says so, since its figures are then not held-out figures."""
    if "val" in meta.splits:
        return "val", ""
    return "train", ", evaluation on training instances (the data has no held-out split)"


def masking_scalars(masking: Masking) -> dict[str, float]:
    """The effective masking as TensorBoard/metrics scalars (flags as 0/1)."""
    return {k: float(v) for k, v in asdict(masking).items()}


def model_config_for(cfg: PretrainConfig, meta: Meta):
    """(the model as the banner names it, its transformers BertConfig): --model if given; else, with
    --init_from, the source's own configuration (warmstart.source_model_config); else the default preset.
    The vocabulary is always the data's."""
    if cfg.model is None and cfg.init_from:
        config, file = source_model_config(cfg.init_from, meta.vocab_size)
        return f"the model configuration of --init_from ({file})", config
    model = cfg.model or DEFAULT_MODEL
    return model, bert_config(model, meta.vocab_size, meta.special_ids.pad)


def _builtin_data(local_rank: int) -> Path:
    target = builtin_data_dir()
    if local_rank == 0 and not is_complete(target):
        print(
            f"bertpt: preparing the built-in demo corpus (Python's documentation) into {target}, once per machine",
            flush=True,
        )
        start = time.time()
        # bars on a terminal only: in a log file (SLURM, nohup, CI) tqdm's carriage returns make one endless line
        prepare_builtin(target, progress=sys.stderr.isatty())
        print(f"bertpt: the built-in demo corpus is ready ({time.time() - start:.0f} s)", flush=True)
    distributed.barrier()
    return target


def main(argv: list[str] | None = None) -> None:
    with exit_on_error("bertpt-pretrain"):
        cfg, ds_path = parse_args(argv)
        set_deepspeed_log_level(cfg.log_level)  # before DeepSpeed's start-up lines
        t0 = time.time()
        run = setup(cfg, ds_path)
        if run.step >= cfg.max_steps:
            run.reporter.write(f"bertpt: the checkpoint is already at step {run.step}; raise --max_steps to train on")
        fit(run)
        if run.diverged:
            stop_diverged(run)
        if run.preempted:
            run.signals.exiting()
            run.reporter.write(
                f"bertpt: stopped by {run.preempted} at step {run.step}, checkpoint saved; exiting with "
                f"status {EXIT_PREEMPTED} (resume: run the same command again)"
            )
            run.reporter.close()
            distributed.shutdown()
            sys.exit(EXIT_PREEMPTED)
        finish(run, time.time() - t0)
        distributed.shutdown()


if __name__ == "__main__":
    main()
