"""The HTTP protocol ``recommender serve`` gives uvicorn: its own, with TCP_NODELAY.

With ``--workers N`` uvicorn binds the listening socket itself without naming the
TCP protocol, so asyncio does not recognise accepted connections as TCP and
leaves Nagle's algorithm on. A response written in two parts (headers, then
body) then waits for the client's delayed ACK: every request on a keep-alive
connection took 44 ms instead of 1-2 ms. Setting TCP_NODELAY on each connection
fixes it, whatever the worker count. The parser is uvicorn's "auto" choice:
httptools when installed, else h11.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Send small writes at once (no waiting for the peer's ACK of the previous one)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket after all: nothing to do
            pass


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, with TCP_NODELAY set on every connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
