#!/bin/bash
# Pretrain BERT with bertpt under SLURM:   sbatch slurm/pretrain.sh
#
# Edit the #SBATCH defaults below for your cluster (nodes, processes per node = GPUs per node, time,
# partition); every run setting can also be set from the environment at submit time, e.g.
#   CONFIG=ds_configs/zero3.json MODEL=bert-large DATA=/data/wiki128 sbatch -N 8 slurm/pretrain.sh
#
# How processes start: one srun task per process (one per GPU). Each task gets RANK / LOCAL_RANK /
# WORLD_SIZE from SLURM's own SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS, and MASTER_ADDR is the
# allocation's first node. We chose this over the deepspeed launcher with a generated hostfile because
# SLURM then starts, places, signals and cleans up every process itself: no ssh/pdsh between nodes
# (often forbidden on clusters), no second launcher to keep in step with the allocation, and a
# crashed rank ends the whole step at once (--kill-on-bad-exit) instead of leaving the others hanging
# in a collective. The same script runs on CPU-only nodes (gloo) and GPU nodes (NCCL): DeepSpeed
# picks the accelerator and backend itself.
#
# Preemption and time limits: SLURM sends this script SIGUSR1 ahead of the time limit (--signal
# below; set it to more than a checkpoint save takes). The script forwards it to every task; bertpt
# finishes the current step, all ranks save the same step, and they exit with status 75. The script
# then requeues the job (scontrol requeue: same job id, same log file, appended) and the requeued job
# continues from that checkpoint: --resume auto is always passed. Send the same signal by hand to
# checkpoint-and-requeue a running job:   scancel --batch --signal=USR1 <jobid>
# (A scheduler preemption with PreemptMode=REQUEUE sends SIGTERM instead; bertpt saves on that too,
# within the cluster's GraceTime, and SLURM requeues the job itself.)
#
#SBATCH --job-name=bertpt
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=2
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@600
# GPU nodes: one task per GPU, and every task sees all of its node's GPUs (LOCAL_RANK picks one), e.g.
##SBATCH --ntasks-per-node=8
##SBATCH --gpus-per-node=8
##SBATCH --cpus-per-task=12
# (not --gpus-per-task=1: each task would then see a single GPU while LOCAL_RANK still counts 0..7)
set -euo pipefail

CONFIG=${CONFIG:-ds_configs/zero2.json}    # DeepSpeed JSON: optimizer, precision, ZeRO, batch sizes
DATA=${DATA:-}                             # prepared data dir (bertpt-prepare); empty: built-in demo corpus
OUTPUT=${OUTPUT:-runs/${SLURM_JOB_NAME:-bertpt}}  # checkpoints/, tb/, hf/, metrics.jsonl
MODEL=${MODEL:-bert-mini}                  # preset name or BertConfig JSON
MAX_STEPS=${MAX_STEPS:-600}                # total optimizer steps (a requeued job continues up to it)
INIT_FROM=${INIT_FROM:-}                   # weights to start from (phase 2: phase 1's checkpoints dir)
EXTRA_ARGS=${EXTRA_ARGS:-}                 # any other bertpt-pretrain flags, e.g. "--save_minutes 30"
PYTHON=${PYTHON:-python3}                  # the Python of the environment bertpt is installed in
# Rendezvous: the first node of the allocation, a port derived from the job id so that jobs sharing
# a node do not collide. Override MASTER_ADDR with an address on the fast network if the first
# node's name resolves to a management interface.
MASTER_ADDR=${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)}
MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
export MASTER_ADDR MASTER_PORT

cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"  # SLURM runs a copy of this script from its spool dir
echo "bertpt: job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NUM_NODES} node(s)" \
     "${SLURM_JOB_NODELIST}, ${SLURM_NTASKS} tasks, master ${MASTER_ADDR}:${MASTER_PORT}, $(date -Is)"

ARGS=(--deepspeed_config "$CONFIG" --output_dir "$OUTPUT" --model "$MODEL" --max_steps "$MAX_STEPS" --resume auto)
[ -n "$DATA" ] && ARGS+=(--data "$DATA")
[ -n "$INIT_FROM" ] && ARGS+=(--init_from "$INIT_FROM")
# shellcheck disable=SC2206  # EXTRA_ARGS is split on purpose
ARGS+=($EXTRA_ARGS)

# The ahead-of-time-limit signal reaches this shell only (B: above); pass it on to every task.
preempted=0
trap 'preempted=1; echo "bertpt: SIGUSR1 (time limit or preemption near): every rank checkpoints and stops"
      scancel --signal=USR1 "$SLURM_JOB_ID" || true' USR1

srun --kill-on-bad-exit=1 bash -c '
  export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS
  [ -n "${SLURM_NTASKS_PER_NODE:-}" ] && export LOCAL_SIZE=$SLURM_NTASKS_PER_NODE  # CPU: shared-memory allreduce on one node
  exec "$0" bertpt/pretrain.py "$@"' "$PYTHON" "${ARGS[@]}" &
srun_pid=$!
# `wait` returns early when a trapped signal arrives: keep waiting until srun itself has exited.
rc=0
while true; do
  wait "$srun_pid" && rc=0 || rc=$?
  kill -0 "$srun_pid" 2>/dev/null || break
done

# 75 = bertpt saved a checkpoint because of a signal (a rank may also report having been killed by
# srun once another had exited, hence the flag as well as the status).
if [ "$preempted" = 1 ] || [ "$rc" = 75 ]; then
  echo "bertpt: srun exited $rc; requeueing job ${SLURM_JOB_ID} to resume from the last checkpoint, $(date -Is)"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
echo "bertpt: srun exited $rc, $(date -Is)"
exit "$rc"
