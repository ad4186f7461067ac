"""The benchmark tells the service's processes apart by the program on their command line."""

from __future__ import annotations

import pytest

from bench.procs import FOLD, RELAY_PROCESS, WRITER, Proc, Usage, cpu_by_role, role


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["python", "-m", "receiver.storage.writer_process", "--database", "/t/relay.db"], WRITER),
        (["python", "-m", "receiver.storage.fold_process", "--database", "/t/writer.db"], FOLD),
        (["python", "-m", "receiver.outbox.relay_process", "--database", "/t/w.db"], RELAY_PROCESS),
        (["python", "-m", "receiver", "relay", "--database", "/t/writer.db"], RELAY_PROCESS),
        (["/usr/bin/python3", "-c", "from multiprocessing import x"], "python3"),
    ],
)
def test_a_process_is_named_by_its_program_never_by_its_options(
    argv: list[str], expected: str
) -> None:
    assert role(argv) == expected


def test_cpu_is_summed_by_role_and_a_restarted_child_counts_from_zero() -> None:
    before = [Proc(1, "http", Usage(10.0, 0)), Proc(2, WRITER, Usage(5.0, 0))]
    after = [
        Proc(1, "http", Usage(12.5, 0)),
        Proc(3, WRITER, Usage(0.5, 0)),  # the writer restarted: a new pid
        Proc(4, RELAY_PROCESS, Usage(1.0, 0)),  # started during the run
    ]
    assert cpu_by_role(before, after) == {"http": 2.5, WRITER: 0.5, RELAY_PROCESS: 1.0}
