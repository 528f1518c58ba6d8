"""Every reply smtp-in sends: SMTP code, RFC 3463 enhanced status code and text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply; ``lines`` continue the text on further lines (RFC 5321 §4.2.1)."""

    code: int
    status: str
    text: str

    def __bytes__(self) -> bytes:
        return f"{self.code} {self.status} {self.text}\r\n".encode()

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def permanent(self) -> bool:
        return self.code >= 500


class SmtpError(Exception):
    """Raised by protocol and policy code; the command loop turns it into the reply line."""

    def __init__(self, reply: Reply, reason: str | None = None) -> None:
        super().__init__(str(reply))
        self.reply = reply
        # A short machine name for logs and metrics (``relay_denied``); None: a syntax error.
        self.reason = reason


def multiline(code: int, lines: list[str]) -> bytes:
    """A multi-line reply such as EHLO's: ``250-a``, ``250-b``, ``250 c``."""
    out = [f"{code}-{line}\r\n" for line in lines[:-1]]
    out.append(f"{code} {lines[-1]}\r\n")
    return "".join(out).encode("utf-8")


# Success.
R221_BYE = Reply(221, "2.0.0", "Bye")
R235_AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
R250_OK = Reply(250, "2.0.0", "OK")
R250_SENDER_OK = Reply(250, "2.1.0", "Sender OK")
R250_RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
R250_RESET = Reply(250, "2.0.0", "Reset")
R252_CANNOT_VRFY = Reply(
    252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"
)
R214_HELP = Reply(214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT")
R220_READY_TLS = Reply(220, "2.0.0", "Ready to start TLS")
# An intermediate reply; like Postfix's, it carries no enhanced status code.
R354_START_MAIL = b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"

# Transient failures.
R421_TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections, try again later")
R421_TOO_MANY_FROM_IP = Reply(421, "4.7.0", "Too many connections from your address")
R421_TIMEOUT = Reply(421, "4.4.2", "Timeout, closing connection")
R421_TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
R421_SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, closing connection")
R421_CREDENTIALS_CHANGED = Reply(421, "4.7.0", "Credentials changed, closing connection")
R451_DATABASE = Reply(451, "4.3.0", "Temporary failure, try again later")
R452_TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
R454_AUTH_LOCKED = Reply(454, "4.7.0", "Too many failed authentications, try again later")
R454_TLS_UNAVAILABLE = Reply(454, "4.7.0", "TLS not available")

# Permanent failures: syntax and sequence.
R500_UNKNOWN_COMMAND = Reply(500, "5.5.2", "Command not recognized")
R500_LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
R500_BARE_LF = Reply(500, "5.5.2", "Command lines must end with CRLF")
R500_BAD_SYNTAX = Reply(500, "5.5.2", "Syntax error")
R501_HELO_SYNTAX = Reply(501, "5.5.4", "Syntax: EHLO/HELO domain")
R501_MAIL_SYNTAX = Reply(501, "5.5.2", "Syntax: MAIL FROM:<address>")
R501_RCPT_SYNTAX = Reply(501, "5.5.2", "Syntax: RCPT TO:<address>")
R501_NO_ARGUMENTS = Reply(501, "5.5.4", "No arguments allowed")
R501_VRFY_SYNTAX = Reply(501, "5.5.4", "Syntax: VRFY address")
R501_BAD_SENDER = Reply(501, "5.1.7", "Bad sender address syntax")
R501_BAD_RECIPIENT = Reply(501, "5.1.3", "Bad recipient address syntax")
R501_AUTH_SYNTAX = Reply(501, "5.5.2", "Syntax: AUTH mechanism [initial-response]")
R501_AUTH_BASE64 = Reply(501, "5.5.2", "Cannot decode the authentication data")
R501_AUTH_CANCELLED = Reply(501, "5.7.0", "Authentication cancelled")
R502_NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
R502_AUTH_UNAVAILABLE = Reply(502, "5.5.1", "AUTH is not available on this port")
R503_HELO_FIRST = Reply(503, "5.5.1", "Send EHLO or HELO first")
R503_NESTED_MAIL = Reply(503, "5.5.1", "Nested MAIL command")
R503_MAIL_FIRST = Reply(503, "5.5.1", "Need MAIL command")
R503_RCPT_FIRST = Reply(503, "5.5.1", "Need RCPT before DATA")
R503_ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Already authenticated")
R503_AUTH_IN_TRANSACTION = Reply(503, "5.5.1", "AUTH not allowed during a mail transaction")
R503_ALREADY_TLS = Reply(503, "5.5.1", "TLS already active")
R504_AUTH_MECHANISM = Reply(504, "5.5.4", "Unrecognized authentication mechanism")
R555_PARAMETERS = Reply(555, "5.5.4", "Parameters not recognized or not implemented")
R501_BODY_PARAMETER = Reply(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
R501_SIZE_PARAMETER = Reply(501, "5.5.4", "SIZE must be a number")
R501_RET_PARAMETER = Reply(501, "5.5.4", "RET must be FULL or HDRS")
R501_ENVID_PARAMETER = Reply(501, "5.5.4", "ENVID must be xtext of at most 100 characters")
R501_NOTIFY_PARAMETER = Reply(
    501, "5.5.4", "NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY"
)
R501_ORCPT_PARAMETER = Reply(501, "5.5.4", "ORCPT must be addr-type;xtext")
R553_NEEDS_SMTPUTF8 = Reply(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter")

# Permanent failures: policy.
R530_AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
R535_AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
R538_ENCRYPTION_REQUIRED = Reply(
    538, "5.7.11", "Encryption required for requested authentication mechanism"
)
R550_NO_SUCH_USER = Reply(550, "5.1.1", "No such user here")
R552_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
R553_NOT_OWNER = Reply(553, "5.7.1", "Sender address not owned by the authenticated user")
R554_RELAY_DENIED = Reply(554, "5.7.1", "Relay access denied")
R554_NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
R554_BARE_LINE_ENDING = Reply(
    554, "5.6.0", "Message refused: bare CR or LF in the content; lines must end with CRLF"
)
R554_TLS_REQUIRED = Reply(554, "5.7.0", "Command refused: TLS handshake failed")
