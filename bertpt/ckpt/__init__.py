"""Checkpoint wing: the checkpoint directory layout, saving, resuming (any world size), warm starts and the Hugging Face export."""
