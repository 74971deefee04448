"""python -m bertpt.finetune: the same as bertpt-finetune."""

from bertpt.finetune.cli import main

if __name__ == "__main__":
    main()
