"""Chaos scenarios against the real service: break things for real, count what was lost.

`python -m bench.chaos` runs them at full size and prints a table; `tests/reliability/` runs
the same scenario code small enough for CI and asserts the same promises.
"""
