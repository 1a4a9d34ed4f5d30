"""CPU time of the processes a benchmark drives, read from /proc (Linux)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after it.
    name_end = text.rindex(")")
    return [text[text.index("(") + 1 : name_end], *text[name_end + 2 :].split()]


def _pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    return [child for child in _pids() if (stat := _stat(child)) and int(stat[2]) == pid]


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on the machine: the backends and the helpers (WAL
    writer, checkpointer), which work for the benchmark too."""
    return [pid for pid in _pids() if (stat := _stat(pid)) and stat[0] == "postgres"]


def cpu_seconds(pid: int) -> float:
    """User and system CPU of ``pid`` so far; 0 if it has ended."""
    stat = _stat(pid)
    return 0.0 if stat is None else (int(stat[12]) + int(stat[13])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    return [pid, *children(pid)]


def _spent(pids: list[int], before: dict[int, float]) -> float:
    """CPU since ``before`` of ``pids``; a process started since counts from zero."""
    return sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids)


@dataclass
class CpuUse:
    """CPU seconds spent during a measured run."""

    server_s: float = 0.0
    postgres_s: float = 0.0


@contextmanager
def metered(server_pid: int) -> Iterator[CpuUse]:
    """CPU of the server (its workers included) and of PostgreSQL (backends opened
    during the run included) while the block runs. A process that ends during the
    run takes its CPU with it, so the figures are floors."""
    server_before = {pid: cpu_seconds(pid) for pid in _tree(server_pid)}
    postgres_before = {pid: cpu_seconds(pid) for pid in postgres_pids()}
    use = CpuUse()
    yield use
    use.server_s = _spent(_tree(server_pid), server_before)
    use.postgres_s = _spent(postgres_pids(), postgres_before)
