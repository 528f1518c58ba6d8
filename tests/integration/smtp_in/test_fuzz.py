"""smtp-in fuzzed whole: random valid and invalid commands over a socket, every one answered."""

from __future__ import annotations

from tests.integration.access.pop3_support import in_thread
from tests.integration.fuzz_support import Client, SessionFuzz, fuzz
from tests.integration.smtp_in.transcript import ServerThread
from tests.support import Tenant

BODY = b"Subject: fuzz\r\n\r\nbody\r\n.\r\n"


def smtp_exchange(client: Client, line: bytes) -> list[bytes]:
    client.send(line + b"\r\n")
    lines: list[bytes] = []
    while True:
        reply = client.line()
        lines.append(reply)
        if not reply:
            return lines
        if reply[3:4] != b"-":
            break
    if reply.startswith(b"354"):
        client.send(BODY)
        lines.append(client.line())
    elif reply.startswith((b"221", b"421", b"220")):  # QUIT, closing, STARTTLS
        lines.append(b"")
    return lines


async def test_random_smtp_sessions_are_answered_and_the_server_goes_on(
    smtp: ServerThread, tenant: Tenant
) -> None:
    await tenant.account("alice")
    rcpt = tenant.address("alice").encode()

    class SmtpFuzz(SessionFuzz):
        port = smtp.inbound
        greeting = b"220 "
        exchange = staticmethod(smtp_exchange)
        commands = (
            b"EHLO client.example", b"HELO client.example", b"MAIL FROM:<a@b.example>",
            b"MAIL FROM:<>", b"RCPT TO:<" + rcpt + b">", b"RCPT TO:<nobody@nowhere.example>",
            b"DATA", b"RSET", b"NOOP", b"VRFY x", b"HELP", b"QUIT", b"STARTTLS",
            b"AUTH PLAIN", b"MAIL FROM:<a@b.example> SIZE=99999999999", b"BDAT 10",
            b"MAIL FROM:<0@\xc2\x80>", b"RCPT TO:<\"x; y\"@b.example>",
        )  # fmt: skip

    await in_thread(fuzz, SmtpFuzz)
