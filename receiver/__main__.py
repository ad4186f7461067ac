"""`python -m receiver` is the same as the `receiver` console script."""

from receiver.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
