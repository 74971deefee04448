"""`python -m bertpt.export`: the same command as `bertpt-export` (the code is in bertpt/ckpt/export.py)."""

from bertpt.ckpt.export import main

if __name__ == "__main__":
    main()
