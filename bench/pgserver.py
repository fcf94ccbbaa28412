"""A throwaway PostgreSQL server (the fault suite's journal, the journal's tests): Debian's
`initdb` into a temporary directory, listening on 127.0.0.1 only, stopped by its own pid."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.sessions import free_port

USER = "legato"
DATABASE = "journal"


class PostgresMissing(RuntimeError):
    """PostgreSQL cannot be started here (not installed, or no user to run it as)."""


@dataclass(frozen=True)
class PgServer:
    """A running server: where it listens, as whom, and its postmaster's pid."""

    bindir: Path
    root: Path
    port: int
    pid: int
    password: str

    def dsn(self, password: str | None = None, port: int | None = None) -> str:
        """Its database's DSN (`password`, `port`: others than its own, to be refused)."""
        pw = self.password if password is None else password
        return f"postgresql://{USER}:{pw}@127.0.0.1:{port or self.port}/{DATABASE}"


def bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres are: on PATH, or Debian's versioned directory."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def temporary_postgres() -> Iterator[PgServer]:
    """A PostgreSQL server of its own for the block. `PostgresMissing` when it cannot be
    started here (not installed, no user to run it as, or it failed to start)."""
    where = bindir()
    if where is None or not (where / "pg_ctl").exists():
        raise PostgresMissing(
            "no initdb on PATH nor under /usr/lib/postgresql/<version>/bin "
            "(install Debian's package: `apt-get install -y postgresql`, as .ci/run does)"
        )
    run_as: list[str] = []
    owner: tuple[int, int] | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresMissing("running as root, and there is no 'postgres' user") from None
        owner = (pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="legato-pg-"))
    data = root / "data"
    password = secrets.token_urlsafe(18)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if owner is not None:
        os.chown(root, *owner)
        os.chown(pwfile, *owner)

    def run(*cmd: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*run_as, *map(str, cmd)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    try:
        done = run(
            where / "initdb",
            "-D", data, "-U", USER, f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            raise PostgresMissing(f"initdb failed: {done.stderr[-2000:]}")
        started = None
        port = 0
        for _ in range(3):  # another process may take the free port before the server does
            port = free_port()
            options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=200"
            started = run(
                where / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-t", "60",
                "-o", options, "start",
            )  # fmt: skip
            if started.returncode == 0:
                break
        if started is None or started.returncode != 0:
            log = root / "server.log"
            raise PostgresMissing(
                f"pg_ctl start failed: {log.read_text()[-2000:] if log.exists() else ''}"
            )
        pid = _postmaster_pid(data)
        if pid is None:
            raise PostgresMissing("PostgreSQL started but wrote no postmaster.pid")
        made = run(where / "createdb", "-h", root, "-p", str(port), "-U", USER, DATABASE)
        if made.returncode != 0:
            raise PostgresMissing(f"createdb failed: {made.stderr}")
        yield PgServer(bindir=where, root=root, port=port, pid=pid, password=password)
    finally:
        # Whatever happened above, a server started here is stopped, by its pid.
        pid = _postmaster_pid(data)
        if pid is not None:
            run(where / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop", timeout=90)
            if not _gone(pid, 30.0):
                os.kill(pid, signal.SIGKILL)  # ours: the postmaster started above
                _gone(pid, 10.0)
        shutil.rmtree(root, ignore_errors=True)
