"""The scripts behind the README's figures (run each as `python benchmarks/NAME.py`); `benchmarks.reference`
holds the literal ports of Google's BERT scripts that tests and benchmarks both compare bertpt against."""
