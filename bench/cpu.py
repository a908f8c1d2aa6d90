"""CPU time of a process and its children, from /proc (Linux; elsewhere: unknown).

Throughput on a shared two-core machine moves with whatever else runs; CPU seconds
spent per event by the server and by PostgreSQL move much less, and say where the
time goes.
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    """Fields after the command name, so field 3 of proc(5) (state) is index 0."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _ticks(fields: list[str]) -> int:
    # utime, stime, and cutime, cstime: children that have exited (PostgreSQL's
    # backends of closed connections end up there).
    return sum(int(value) for value in fields[11:15])


def tree_cpu_s(root_pid: int) -> float | None:
    """CPU seconds used so far by ``root_pid`` and its direct children, or None."""
    root = _stat_fields(root_pid)
    if root is None:
        return None
    ticks = _ticks(root)
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or entry.name == str(root_pid):
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[1] == str(root_pid):
            ticks += _ticks(fields)
    return ticks / _TICKS_PER_S


class CpuStopwatch:
    """CPU seconds a process tree has used since the stopwatch was made."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._start = tree_cpu_s(pid) if pid is not None else None

    def elapsed_s(self) -> float | None:
        if self._pid is None or self._start is None:
            return None
        now = tree_cpu_s(self._pid)
        return None if now is None else now - self._start
