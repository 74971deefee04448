"""`python -m bertpt.prepare`: the same command as `bertpt-prepare` (the code is in bertpt/data/prepare.py)."""

from bertpt.data.prepare import main

if __name__ == "__main__":
    main()
