"""bertpt: pretrain BERT (MLM + NSP) from scratch on DeepSpeed."""

__version__ = "0.1.0"
