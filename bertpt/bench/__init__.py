"""`python -m bertpt.bench`: bertpt's training step side by side with a plain transformers loop.

Outside the library's import graph: nothing in bertpt imports this package; it uses bertpt's public API.
"""
