"""Checkpoint wing: the checkpoint directory layout, saving, resuming (any world size), warm starts and the
Hugging Face export.

    layout.py      the directory contract: file names, tags, `latest`, manifest, the newest good checkpoint
                   (resume, --init_from and export all take it), RunPosition, the compatibility check
    checkpoint.py  saving: DeepSpeed's sharded save, published atomically; RNG states; --keep_last pruning
    policy.py      when to save (--save_steps, --save_minutes, the last step, preemption), agreed by all ranks
    resume.py      resuming: find -> plan -> load
    universal.py   helpers for a resume on another world size (DeepSpeed's universal checkpoint format)
    warmstart.py   --init_from: weights from a Hugging Face directory or a bertpt checkpoint
    export.py      bertpt-export: a checkpoint -> a Hugging Face BertForPreTraining directory
"""
