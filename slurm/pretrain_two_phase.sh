#!/bin/bash
# BERT's two-phase schedule under SLURM: phase 1 at sequence length 128, then phase 2 at 512 starting
# from phase 1's final weights (Devlin et al. 2018: 90% of the steps at 128, the rest at 512, which
# learns position embeddings past 128 at a fraction of the cost).
#
# Run it on the login node (it submits two jobs and returns):
#   PHASE1_DATA=data/wiki128 PHASE2_DATA=data/wiki512 SBATCH_ARGS="-N 8" bash slurm/pretrain_two_phase.sh
#
# Both phases are slurm/pretrain.sh (same #SBATCH defaults, requeue on preemption, --resume auto).
# Phase 2 waits for phase 1 to succeed (--dependency=afterok; if phase 1 fails, phase 2 is cancelled
# rather than left pending forever) and starts from phase 1's newest checkpoint with
# --init_from: weights only, with phase 2's own optimizer, LR schedule (warm-up again) and step 0,
# as in NVIDIA's and Google's recipes. A requeued phase 2 resumes its own checkpoints instead.
#
# Prepare phase 2's data with phase 1's tokenizer, so the vocabularies match:
#   bertpt-prepare corpus/ --output_dir data/wiki128 --max_seq_length 128
#   bertpt-prepare corpus/ --output_dir data/wiki512 --max_seq_length 512 --max_predictions_per_seq 80 \
#       --tokenizer data/wiki128/tokenizer
set -euo pipefail
cd "$(dirname "$0")/.."

PHASE1_DATA=${PHASE1_DATA:?set PHASE1_DATA to data prepared at --max_seq_length 128}
PHASE2_DATA=${PHASE2_DATA:?set PHASE2_DATA to data prepared at --max_seq_length 512 with phase 1 tokenizer}
OUTPUT=${OUTPUT:-runs/bertpt-two-phase}        # phase1/ and phase2/ run directories go here
PHASE1_CONFIG=${PHASE1_CONFIG:-${CONFIG:-ds_configs/zero2.json}}
PHASE2_CONFIG=${PHASE2_CONFIG:-$PHASE1_CONFIG} # phase 2 often wants a smaller micro-batch (4x the tokens)
# NVIDIA's BERT-large LAMB recipe: 7038 steps at 128, then 1563 at 512 (at global batches of 64k and 32k).
PHASE1_STEPS=${PHASE1_STEPS:-7038}
PHASE2_STEPS=${PHASE2_STEPS:-1563}
SBATCH_ARGS=${SBATCH_ARGS:-}                   # options for both jobs, e.g. "-N 8 -p gpu --time=48:00:00"

for d in "$PHASE1_DATA" "$PHASE2_DATA"; do
  [ -f "$d/meta.json" ] || { echo "pretrain_two_phase.sh: error: $d is not a prepared data directory (no meta.json)" >&2; exit 2; }
done

RUN1=$OUTPUT/phase1 RUN2=$OUTPUT/phase2
# shellcheck disable=SC2086  # SBATCH_ARGS is split on purpose
phase1=$(DATA="$PHASE1_DATA" OUTPUT="$RUN1" CONFIG="$PHASE1_CONFIG" MAX_STEPS="$PHASE1_STEPS" INIT_FROM="" \
         sbatch --parsable --job-name=bertpt-phase1 $SBATCH_ARGS slurm/pretrain.sh)
phase1=${phase1%%;*}
# shellcheck disable=SC2086
phase2=$(DATA="$PHASE2_DATA" OUTPUT="$RUN2" CONFIG="$PHASE2_CONFIG" MAX_STEPS="$PHASE2_STEPS" \
         INIT_FROM="$RUN1/checkpoints" \
         sbatch --parsable --job-name=bertpt-phase2 --dependency="afterok:$phase1" --kill-on-invalid-dep=yes \
         $SBATCH_ARGS slurm/pretrain.sh)
phase2=${phase2%%;*}
echo "bertpt: phase 1 (seq 128, $PHASE1_STEPS steps): job $phase1 -> $RUN1"
echo "bertpt: phase 2 (seq 512, $PHASE2_STEPS steps): job $phase2, starts when $phase1 succeeds -> $RUN2"
