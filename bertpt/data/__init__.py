"""The data wing: raw text -> tokenizer -> NSP instances -> shards (prepare side);
shards -> masked batches (training side)."""
