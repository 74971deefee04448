"""Literal ports of Google's BERT scripts (https://github.com/google-research/bert), independent of bertpt.

    create_pretraining_data.py   NSP instances and MLM masks: the oracle tests/test_instances.py and
                                 tests/test_static_masking_e2e.py compare bertpt.data against
    tokenization.py              the pure-Python WordPiece tokenizer: the baseline of benchmarks/prepare_throughput.py

Neither imports bertpt, and nothing here imports tests: both tests and benchmarks import from here.
"""
