"""Chaos scenarios against the real service: break things for real, count what was lost.

`python -m tests.reliability` runs them at full size and prints a table; the tests next to this
package (`tests/reliability/test_*.py`) run the same scenario code small enough for CI and assert
the same promises.
"""
