"""Fine-tuning on downstream tasks (GLUE and your own): bertpt-finetune."""
