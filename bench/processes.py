"""Child processes: the two HTTP servers and the load generator.

Every process is started here and stopped here, by its own pid: SIGTERM, a grace
period, then SIGKILL.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from app.embedded_postgres import ConnectionInfo
from bench.load import LoadResult, LoadSpec, result_from_json

PROJECT_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 90.0  # the service migrates the database before it is ready
STOP_GRACE_S = 25.0  # the service's graceful shutdown allows 20 s


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class RunningServer:
    port: int
    pid: int


def service_command(port: int) -> list[str]:
    """``feedback-service serve`` from the venv the harness runs in."""
    executable = Path(sys.executable).parent / "feedback-service"
    if not executable.exists():
        raise BenchError(f"{executable} not found: run with the project's venv python")
    return [str(executable), "serve", "--port", str(port)]


def service_env(database: ConnectionInfo, admin_key: str) -> dict[str, str]:
    # Other FEEDBACK_* variables pass through, so settings can be compared run to run.
    return {
        **os.environ,
        "FEEDBACK_DATABASE_URL": database.sqlalchemy_url(),
        "FEEDBACK_BOOTSTRAP_ADMIN_KEY": admin_key,
        "FEEDBACK_LOG_LEVEL": "WARNING",
        "FEEDBACK_HOST": "127.0.0.1",
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _answers_ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _wait_until_ready(name: str, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with {process.returncode}:\n{_log_tail(log)}")
        if _answers_ready(port):
            return
        time.sleep(0.2)
    raise BenchError(f"{name} was not ready after {READY_TIMEOUT_S:.0f} s:\n{_log_tail(log)}")


@contextmanager
def running_server(
    name: str,
    command_for_port: Callable[[int], Sequence[str]],
    env: Mapping[str, str],
    log_dir: Path,
) -> Iterator[RunningServer]:
    """Start an HTTP server on a free loopback port, wait for ``GET /readyz`` 200 and
    yield it; stop it on exit.

    Output goes to ``<log_dir>/<name>.log``. A session of its own keeps a Ctrl-C in the
    terminal from reaching the server before the harness stops it in order.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(command_for_port(port)),
            env=dict(env),
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(name, process, port, log)
        yield RunningServer(port, process.pid)
    finally:
        stop_process(process)


def run_load(spec: LoadSpec) -> LoadResult:
    """Run one load phase in a fresh load-generator process and return its result."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.load"],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        output, _ = process.communicate(
            json.dumps(asdict(spec)).encode(), timeout=spec.time_budget_s()
        )
    finally:
        stop_process(process)
    if process.returncode != 0:
        raise BenchError(f"the load generator failed ({process.returncode}); see its stderr")
    return result_from_json(json.loads(output))
