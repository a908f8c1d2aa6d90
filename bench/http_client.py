"""A minimal HTTP/1.1 keep-alive client on asyncio streams.

It does only what the benchmark needs: send pre-encoded request bytes, read the status
line, the headers and a Content-Length body. A general client (httpx) would spend more
CPU per request than the server under test on the same two cores.
"""

from __future__ import annotations

import asyncio
import contextlib


class HttpProtocolError(Exception):
    """The server answered something this client does not read (e.g. chunked bodies)."""


class HttpConnection:
    """One keep-alive connection with at most one request in flight (no pipelining)."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._answered = 0  # responses read on the current socket

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._answered = 0
        return self._reader, self._writer

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is None:
            return
        writer.close()
        with contextlib.suppress(OSError):  # the peer reset it first: closed either way
            await writer.wait_closed()

    async def send(self, request: bytes) -> int:
        """Send one request and return the response status (see ``exchange``)."""
        status, _ = await self.exchange(request)
        return status

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request and return the response status and body.

        The server closes keep-alive connections that idle too long; a request that
        meets such a connection is sent once more on a new one. That is safe here:
        ingest is idempotent by event_id, and the resend is part of the measured time.
        """
        try:
            return await self._exchange(request)
        except (ConnectionError, asyncio.IncompleteReadError):
            was_reused = self._answered > 0
            await self.close()
            if not was_reused:
                raise
        return await self._exchange(request)

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self._reader is None or self._writer is None:
            reader, writer = await self.open()
        else:
            reader, writer = self._reader, self._writer
        writer.write(request)
        await writer.drain()
        status, content_length, keep_alive = await self._read_head(reader)
        body = await reader.readexactly(content_length)
        self._answered += 1
        if not keep_alive:
            await self.close()
        return status, body

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise HttpProtocolError(f"bad status line {status_line!r}") from None
        content_length = 0
        keep_alive = True
        while (line := await reader.readline()) not in (b"\r\n", b"\n"):
            if not line:
                raise ConnectionResetError("the server closed the connection mid-response")
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                content_length = int(value)
            elif name == b"connection":
                keep_alive = value.strip().lower() != b"close"
            elif name == b"transfer-encoding":
                raise HttpProtocolError("chunked responses are not supported")
        return status, content_length, keep_alive
