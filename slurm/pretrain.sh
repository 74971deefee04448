#!/bin/bash
# Pretrain BERT with bertpt under SLURM:   sbatch slurm/pretrain.sh
#
# Edit the #SBATCH defaults below for your cluster; every run setting can also be overridden from
# the environment, e.g.   CONFIG=ds_configs/zero3.json MODEL=bert-large sbatch slurm/pretrain.sh
#
# One srun task per process (per GPU): each task gets RANK / LOCAL_RANK / WORLD_SIZE from SLURM's
# own SLURM_PROCID / SLURM_LOCALID / SLURM_NTASKS, so SLURM places, signals and cleans up every
# process itself (no ssh between nodes, no second launcher to keep in step with the allocation).
# --resume auto is always passed: a requeued or resubmitted job continues from its last checkpoint.
#
#SBATCH --job-name=bertpt
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=2
#SBATCH --time=24:00:00
#SBATCH --output=%x-%j.out
# On GPU nodes also ask for one GPU per task, for example:
##SBATCH --gpus-per-task=1
set -euo pipefail

CONFIG=${CONFIG:-ds_configs/zero2.json}    # DeepSpeed JSON: optimizer, precision, ZeRO, batch sizes
DATA=${DATA:-}                             # prepared data dir (bertpt-prepare); empty: built-in demo corpus
OUTPUT=${OUTPUT:-runs/${SLURM_JOB_NAME:-bertpt}}
MODEL=${MODEL:-bert-mini}
MAX_STEPS=${MAX_STEPS:-600}
EXTRA_ARGS=${EXTRA_ARGS:-}                 # any other bertpt-pretrain flags
MASTER_PORT=${MASTER_PORT:-$((20000 + ${SLURM_JOB_ID:-0} % 20000))}  # per job, so jobs sharing a node do not collide
PYTHON=${PYTHON:-python3}

cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_ADDR MASTER_PORT
echo "bertpt: job ${SLURM_JOB_ID} on ${SLURM_JOB_NUM_NODES} node(s) ${SLURM_JOB_NODELIST}, ${SLURM_NTASKS} tasks, master ${MASTER_ADDR}:${MASTER_PORT}"

ARGS=(--deepspeed_config "$CONFIG" --output_dir "$OUTPUT" --model "$MODEL" --max_steps "$MAX_STEPS" --resume auto)
[ -n "$DATA" ] && ARGS+=(--data "$DATA")
# shellcheck disable=SC2206  # EXTRA_ARGS is split on purpose
ARGS+=($EXTRA_ARGS)

srun --kill-on-bad-exit=1 bash -c '
  export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS
  exec "$0" bertpt/pretrain.py "$@"' "$PYTHON" "${ARGS[@]}"
