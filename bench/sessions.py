"""Processes started in sessions of their own (`ray start`, drivers, `legato venues up`),
and stopped by those sessions' pids: never `ray stop`, which stops every Ray on the
machine. For the fault suite and the tests that start clusters of their own."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """Every live process of session `sid` (what one `ray start`, or one driver, left); a
    zombie, dead and waiting for its parent to reap it, is not one."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The fields after the command name (which may hold spaces) start after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def stop_sessions(
    sids: Iterable[int],
    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGKILL),
    timeout_s: float = 5.0,
) -> list[int]:
    """Signal every process of these sessions, each signal in turn until none is left or
    `timeout_s` has passed; the pids still alive after the last.

    5 s: a local Ray's processes that stop on SIGTERM are gone within 2 s (measured: a
    `ray start --head --block` of 7 processes), while `ray start --block` itself and Ray's
    autoscaler monitor outlast SIGTERM (20 s and more) and go only with SIGKILL: a longer
    grace was that much lost at every stop."""
    sids = list(sids)
    for sig in signals:
        deadline = time.monotonic() + timeout_s
        while True:
            alive = [pid for sid in sids for pid in session_pids(sid)]
            if not alive:
                return []
            for pid in alive:  # again each round: a dying raylet may have started a worker
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)  # for the signalled processes to go, bounded
    return [pid for sid in sids for pid in session_pids(sid)]
