"""EmbeddedPostgres directly: start and stop, data kept across restarts, the guest role
of a second process, a taken port, stale pid files, and how the server is exposed."""

from __future__ import annotations

import asyncio
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

import app.embedded_postgres as embedded_module
from app.embedded_postgres import ConnectionInfo, EmbeddedPostgres
from tests.fixtures.server import (
    free_port,
    pid_alive,
    postgres_pids,
    scratch_dir,
    stop_postgres,
    unused_pid,
    write_postmaster_pid,
)

pytestmark = pytest.mark.slow


class Servers:
    """Creates EmbeddedPostgres instances under one directory and stops all of them (and
    any postmaster left running there) at teardown."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.created: list[EmbeddedPostgres] = []

    def new(self, name: str = "pg") -> EmbeddedPostgres:
        server = EmbeddedPostgres(self.base / name)
        self.created.append(server)
        return server

    async def start(self, server: EmbeddedPostgres) -> ConnectionInfo:
        return await asyncio.to_thread(server.start)

    async def stop(self, server: EmbeddedPostgres) -> None:
        await asyncio.to_thread(server.stop)

    def close(self) -> None:
        for server in reversed(self.created):  # guests first, then owners
            try:
                server.stop()
            except Exception:  # noqa: S112 - best effort; stop_postgres below makes sure
                continue
        for server in self.created:
            stop_postgres(server.data_dir)


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> Iterator[Servers]:
    """Data under a fresh scratch directory per test (see scratch_dir on why not tmp_path)."""
    with scratch_dir(request.node.name) as base:
        created = Servers(base)
        try:
            yield created
        finally:
            created.close()


async def connect(info: ConnectionInfo, password: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=info.host,
        port=info.port,
        user=info.user,
        password=info.password if password is None else password,
        database=info.database,
        timeout=10,
    )


async def fetch_value(info: ConnectionInfo, query: str) -> object:
    connection = await connect(info)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])


async def test_start_and_stop(servers: Servers) -> None:
    server = servers.new()
    info = await servers.start(server)
    assert server.owns_server
    assert server.info == info
    assert (info.host, info.user, info.database) == ("127.0.0.1", "postgres", "feedback")
    assert info.password not in repr(info)
    assert await fetch_value(info, "SELECT current_database()") == "feedback"
    pids = postgres_pids(server.data_dir)
    assert pids == [postmaster_pid(server)]
    assert (server.data_dir / "postgres.json").exists()

    await servers.stop(server)
    assert not server.owns_server
    assert postgres_pids(server.data_dir) == []
    assert not (server.pgdata / "postmaster.pid").exists()
    assert not (server.data_dir / "postgres.json").exists()
    with pytest.raises(ConnectionRefusedError):
        await connect(info)
    await servers.stop(server)  # stopping again is a no-op


async def test_data_is_kept_across_stop_and_start(servers: Servers) -> None:
    first = servers.new()
    info = await servers.start(first)
    connection = await connect(info)
    try:
        await connection.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
        await connection.execute("INSERT INTO kept VALUES (1, 'survives a restart')")
    finally:
        await connection.close()
    await servers.stop(first)

    second = servers.new()  # as a new process would
    info = await servers.start(second)
    assert await fetch_value(info, "SELECT note FROM kept WHERE id = 1") == "survives a restart"
    await servers.stop(second)


async def test_second_instance_on_same_dir_is_a_guest(servers: Servers) -> None:
    owner = servers.new()
    owner_info = await servers.start(owner)
    pid = postmaster_pid(owner)

    guest = servers.new()
    guest_info = await servers.start(guest)
    assert not guest.owns_server
    assert owner.owns_server
    assert guest_info == owner_info  # same port, same credentials
    assert await fetch_value(guest_info, "SELECT 1") == 1

    await servers.stop(guest)
    assert postgres_pids(owner.data_dir) == [pid], "a guest's stop() must not stop the server"
    assert await fetch_value(owner_info, "SELECT 2") == 2
    assert (owner.data_dir / "postgres.json").exists()

    await servers.stop(owner)
    assert postgres_pids(owner.data_dir) == []


async def test_restart_when_previous_port_is_taken_uses_another_port(servers: Servers) -> None:
    server = servers.new()
    old_port = (await servers.start(server)).port
    await servers.stop(server)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        # The stopped server's connections may linger in TIME_WAIT on that port (or a
        # client elsewhere may hold it as its ephemeral port): listening is still ours.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        info = await servers.start(server)
        assert info.port != old_port
        assert await fetch_value(info, "SELECT 1") == 1
        await servers.stop(server)


async def test_port_taken_between_probe_and_start_is_retried(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The free-port probe races with other processes: a port taken before the server
    binds it makes the start fail once, then it tries another port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = int(squatter.getsockname()[1])
        ports = iter([taken, free_port()])
        monkeypatch.setattr(embedded_module, "_free_port", lambda: next(ports))
        server = servers.new()
        info = await servers.start(server)
        assert info.port != taken
        assert await fetch_value(info, "SELECT 1") == 1
        await servers.stop(server)


async def test_password_file_is_private_and_server_listens_on_loopback_only(
    servers: Servers,
) -> None:
    server = servers.new()
    info = await servers.start(server)
    password_file = server.data_dir / "postgres.password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert password_file.read_text().strip() == info.password
    assert not (server.data_dir / "initdb.pw").exists()

    assert listening_addresses(info.port) == {"127.0.0.1"}
    lines = (server.pgdata / "postmaster.pid").read_text().splitlines()
    assert lines[4:6] == ["", "127.0.0.1"]  # no unix socket directory; listen address

    with pytest.raises(asyncpg.InvalidPasswordError):
        await connect(info, password="wrong")
    await servers.stop(server)


def listening_addresses(port: int) -> set[str]:
    """Local addresses of TCP sockets listening on ``port`` (IPv4 and IPv6)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A: LISTEN
                continue
            if len(address) == 8:
                found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
            else:
                raw = b"".join(
                    bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8)
                )
                found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


# -- leftovers of a run that did not stop cleanly --------------------------------------------


async def test_orphan_of_a_dead_owner_is_stopped_and_replaced(servers: Servers) -> None:
    dead_owner = servers.new()
    orphan_info = await servers.start(dead_owner)
    orphan = postmaster_pid(dead_owner)
    connection = await connect(orphan_info)
    await connection.execute("CREATE TABLE kept (id int)")
    await connection.execute("INSERT INTO kept VALUES (7)")
    await connection.close()
    dead_owner._unlock()  # what the kernel does when the owner is killed

    server = servers.new()
    info = await servers.start(server)
    assert server.owns_server
    assert not pid_alive(orphan)
    new_pid = postmaster_pid(server)
    assert new_pid != orphan
    assert postgres_pids(server.data_dir) == [new_pid]
    assert await fetch_value(info, "SELECT id FROM kept") == 7
    await servers.stop(server)


async def test_guest_during_recovery_gets_the_new_server(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_owner = servers.new()
    orphan_port = (await servers.start(dead_owner)).port
    dead_owner._unlock()  # killed: the orphan and its postgres.json stay behind

    owner, guest = servers.new(), servers.new()
    guest_infos: list[ConnectionInfo] = []
    guest_thread = threading.Thread(target=lambda: guest_infos.append(guest.start()))
    clear_leftovers = EmbeddedPostgres._clear_leftovers

    def guest_arrives_meanwhile(self: EmbeddedPostgres) -> None:
        if self is owner:  # e.g. `keys create` while `serve` restarts after a crash
            guest_thread.start()
            time.sleep(0.5)  # the guest is now looking for the server
        clear_leftovers(self)

    monkeypatch.setattr(EmbeddedPostgres, "_clear_leftovers", guest_arrives_meanwhile)
    info = await servers.start(owner)
    await asyncio.to_thread(guest_thread.join, 60)
    assert owner.owns_server
    assert not guest.owns_server
    assert guest_infos[0].port == info.port, f"guest got the orphan's port {orphan_port}"


STALE_CONTENTS = {
    "dead pid": "{pid}\n{pgdata}\n1700000000\n5432\n\n127.0.0.1\n  1234  5678\nready   \n",
    "empty": "",
    "not a pid": "garbage\n",
}


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(STALE_CONTENTS["dead pid"], id="dead-pid"),
        pytest.param(STALE_CONTENTS["empty"], id="empty"),
        pytest.param(STALE_CONTENTS["not a pid"], id="not-a-pid"),
    ],
)
async def test_stale_postmaster_pid_does_not_block_start(servers: Servers, content: str) -> None:
    server = servers.new()
    await servers.start(server)
    await servers.stop(server)
    write_postmaster_pid(server.pgdata, content.format(pid=unused_pid(), pgdata=server.pgdata))

    info = await servers.start(server)
    assert await fetch_value(info, "SELECT 1") == 1
    await servers.stop(server)


async def test_stale_pid_of_another_clusters_postgres_leaves_it_alone(servers: Servers) -> None:
    other = servers.new("other")
    other_info = await servers.start(other)
    other_pid = postmaster_pid(other)

    server = servers.new("mine")
    await servers.start(server)
    await servers.stop(server)
    # The pid was reused (e.g. after a reboot) by the postmaster of another data directory.
    write_postmaster_pid(server.pgdata, f"{other_pid}\n")
    try:
        info = await servers.start(server)
        assert await fetch_value(info, "SELECT 1") == 1
    finally:
        other_survived = postgres_pids(other.data_dir) == [other_pid]
    assert other_survived, "another data directory's server was stopped"
    assert await fetch_value(other_info, "SELECT 1") == 1
