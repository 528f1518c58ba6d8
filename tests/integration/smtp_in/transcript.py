"""A raw-socket SMTP client for tests that read like RFC transcripts, and a server thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from postroom.config import Settings
from postroom.smtp_in.policy import Port
from postroom.smtp_in.server import ListenerSpec, SmtpServer, start_server

TIMEOUT = 10.0


class Transcript:
    """Send lines, expect replies: ``t.send("EHLO x").expect("250")``."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
        self.sock: socket.socket = sock
        self.file = sock.makefile("rb")
        self.last: list[str] = []

    def send(self, line: str | bytes) -> Transcript:
        data = line if isinstance(line, bytes) else line.encode("utf-8") + b"\r\n"
        self.sock.sendall(data)
        return self

    def reply(self) -> list[str]:
        """One reply, all its lines, without CRLF."""
        lines: list[str] = []
        while True:
            raw = self.file.readline(8192)
            if not raw:
                raise ConnectionError(f"connection closed; reply so far {lines!r}")
            assert raw.endswith(b"\r\n"), raw
            text = raw[:-2].decode("utf-8")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                break
        self.last = lines
        return lines

    def expect(self, start: str) -> Transcript:
        lines = self.reply()
        assert lines[-1].startswith(start), f"expected {start!r}, got {lines!r}"
        return self

    def expect_exactly(self, *lines: str) -> Transcript:
        got = self.reply()
        assert got == list(lines), f"expected {list(lines)!r}, got {got!r}"
        return self

    def greeting(self) -> Transcript:
        return self.expect("220 ")

    def starttls(self, context: ssl.SSLContext) -> Transcript:
        self.send("STARTTLS").expect_exactly("220 2.0.0 Ready to start TLS")
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")
        self.file = self.sock.makefile("rb")
        return self

    def closed(self) -> bool:
        """True when the server has closed the connection (EOF)."""
        try:
            return self.file.readline(8192) == b""
        except (ConnectionError, ssl.SSLError):
            return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class ServerThread:
    """smtp-in's listeners on free loopback ports, on an event loop of their own."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.settings = settings
        self.kwargs = kwargs
        self.loop = asyncio.new_event_loop()
        self.server: SmtpServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        listeners = [ListenerSpec(kind, 0) for kind in Port]
        future = asyncio.run_coroutine_threadsafe(
            start_server(self.settings, listeners, **self.kwargs), self.loop
        )
        self.server = future.result(TIMEOUT)
        return self

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(TIMEOUT)

    def port(self, kind: Port) -> int:
        assert self.server is not None
        return self.server.ports[kind]

    @property
    def inbound(self) -> int:
        return self.port(Port.INBOUND)

    @property
    def submission(self) -> int:
        return self.port(Port.SUBMISSION)

    @property
    def submissions(self) -> int:
        return self.port(Port.SUBMISSIONS)

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(grace=2), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(TIMEOUT)
        self.loop.close()
