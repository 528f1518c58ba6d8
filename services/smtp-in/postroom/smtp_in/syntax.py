"""SMTP syntax without I/O: command lines, paths, parameters and AUTH responses.

Everything that decides whether a command line is well-formed lives here, as pure functions
that return values or raise `SmtpError` with the reply; the session decides what is allowed
when (`session.SEQUENCE_REFUSALS`) and the reader frames lines and DATA.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

from postroom import sasl
from postroom.smtp_in import replies as R
from postroom.smtp_in.replies import Reply, SmtpError

# RFC 5321 §4.5.3.1.3: a reverse-path or forward-path is at most 256 octets.
MAX_PATH = 256

KNOWN_COMMANDS = frozenset(
    {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP",
     "STARTTLS", "AUTH", "BDAT", "ETRN", "TURN", "SEND", "SOML", "SAML"}
)  # fmt: skip
_VERB = re.compile(r"[A-Za-z]{1,16}")


def split_line(line: bytes) -> tuple[str, str]:
    """A command line without its CRLF → (VERB, argument). Raises 500 for non-commands."""
    verb_bytes, _, arg_bytes = line.partition(b" ")
    try:
        verb = verb_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise SmtpError(R.R500_UNKNOWN_COMMAND) from None
    if not _VERB.fullmatch(verb):
        raise SmtpError(R.R500_UNKNOWN_COMMAND)
    verb = verb.upper()
    if verb not in KNOWN_COMMANDS:
        raise SmtpError(R.R500_UNKNOWN_COMMAND)
    # Arguments keep invalid UTF-8 as surrogates, which every validator below refuses.
    return verb, arg_bytes.decode("utf-8", "surrogateescape").strip(" ")


# RFC 5321 §4.1.2 with RFC 6531 §3.3's UTF-8 additions (non-ASCII allowed in atoms and labels):
# any non-ASCII character but the C1 controls (U+0080-U+009F) and the surrogates that stand for
# invalid UTF-8; other non-printables are refused after the match (`_printable`).
_U = r"[^\x00-\x9f\udc80-\udcff]"
_ATOM = rf"(?:[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]|{_U})+"
_DOT_STRING = rf"{_ATOM}(?:\.{_ATOM})*"
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e]|{_U})*"'
_LET_DIG = rf"(?:[A-Za-z0-9]|{_U})"
_SUB_DOMAIN = rf"{_LET_DIG}(?:(?:[A-Za-z0-9-]|{_U})*{_LET_DIG})?"
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*"
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_MAILBOX = re.compile(rf"(?P<local>{_DOT_STRING}|{_QUOTED})@(?P<domain>{_DOMAIN}|{_LITERAL})")
_DOMAIN_RE = re.compile(_DOMAIN)
_ADL = re.compile(rf"@{_DOMAIN}(?:,@{_DOMAIN})*:")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# RFC 5321 §4.1.2 esmtp-value, widened to UTF-8 by RFC 6531 §3.3.
_VALUE = re.compile(rf"(?:[\x21-\x3c\x3e-\x7e]|{_U})+")


def _printable(text: str) -> bool:
    """No control, format, separator (but the ASCII space) or unassigned character: RFC 6531
    §3.3 widens atoms to UTF-8 characters, not to invisible ones (RFC 6532 §3.1 excludes
    controls) that would let two different addresses look alike or break a header."""
    return text.isprintable()


def valid_domain(text: str) -> bool:
    """A domain name or address literal, as EHLO and paths carry it."""
    if text.startswith("["):
        return _valid_literal(text)
    return bool(_DOMAIN_RE.fullmatch(text)) and len(text.encode("utf-8", "replace")) <= 255


def _valid_literal(text: str) -> bool:
    # RFC 5321 §4.1.3: IPv4, "IPv6:" + address, or a registered tag (none are registered).
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else ""
    try:
        if inner[:5].upper() == "IPV6:":
            return ipaddress.ip_address(inner[5:]).version == 6
        return ipaddress.ip_address(inner).version == 4
    except ValueError:
        return False


def _take_path(text: str) -> tuple[str, str]:
    """Split ``<path> rest`` at the closing ``>`` that is not inside a quoted local part."""
    if not text.startswith("<"):
        raise ValueError("no <")
    quoted = escaped = False
    for i in range(1, len(text)):
        c = text[i]
        if escaped:
            escaped = False
        elif c == "\\" and quoted:
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            return text[1:i], text[i + 1 :]
    raise ValueError("no >")


@dataclass(frozen=True, slots=True)
class Path:
    """A parsed reverse-path or forward-path: ``address`` is "" for the null path ``<>``."""

    address: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def ascii(self) -> bool:
        return self.address.isascii()


def parse_path_argument(arg: str, keyword: str, *, null_ok: bool) -> Path:
    """Parse ``FROM:<a@b> PARAMS`` / ``TO:<a@b> PARAMS`` (RFC 5321 §4.1.1.2-3)."""
    is_mail = keyword == "FROM"
    syntax = R.R501_MAIL_SYNTAX if is_mail else R.R501_RCPT_SYNTAX
    bad = R.R501_BAD_SENDER if is_mail else R.R501_BAD_RECIPIENT
    head = arg[: len(keyword) + 1]
    if head.upper() != keyword + ":":
        raise SmtpError(syntax)
    # Spaces after the colon are outside the grammar but widespread; accepted like Postfix.
    rest = arg[len(keyword) + 1 :].lstrip(" ")
    try:
        inner, tail = _take_path(rest)
    except ValueError:
        raise SmtpError(bad if rest.startswith("<") else syntax) from None
    if tail and not tail.startswith(" "):
        raise SmtpError(bad)
    if len(inner.encode("utf-8", "surrogateescape")) + 2 > MAX_PATH:
        raise SmtpError(bad)
    # RFC 5321 §4.1.1.3 / §3.6.1: source routes must be accepted and ignored.
    adl = _ADL.match(inner)
    if adl:
        inner = inner[adl.end() :]
    if inner == "":
        if not null_ok or adl:
            raise SmtpError(bad)
        address = ""
    elif not is_mail and inner.lower() == "postmaster":
        # RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted.
        address = "postmaster"
    else:
        match = _MAILBOX.fullmatch(inner)
        if not match or (match["domain"].startswith("[") and not _valid_literal(match["domain"])):
            raise SmtpError(bad)
        if not _printable(inner):
            raise SmtpError(bad)
        address = inner
    return Path(address, parse_params(tail))


def parse_params(text: str) -> dict[str, str | None]:
    """``KEY=value KEY2`` → {"KEY": "value", "KEY2": None}; keywords are uppercased."""
    params: dict[str, str | None] = {}
    for item in text.split(" "):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not _KEYWORD.fullmatch(key) or (eq and not _VALUE.fullmatch(value)):
            raise SmtpError(R.R555_PARAMETERS)
        key = key.upper()
        if key in params:
            raise SmtpError(R.R555_PARAMETERS)
        params[key] = value if eq else None
    return params


# RFC 3461 §4: xtext = *( xchar / hexchar ), xchar any of "!" to "~" but "+" and "=",
# hexchar "+" and two upper-case hex digits.
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2: the parameter is at most 500 characters
NOTIFY_VALUES = ("SUCCESS", "FAILURE", "DELAY")


def decode_xtext(text: str) -> str | None:
    """The text an xtext stands for, or None when it is not xtext or decodes to something
    that may not go into a header field (a control character: CR, LF, NUL...)."""
    if not _XTEXT.fullmatch(text):
        return None
    decoded = _XTEXT_HEX.sub(lambda m: chr(int(m[1], 16)), text)
    return decoded if decoded.isascii() and decoded.isprintable() else None


@dataclass(frozen=True, slots=True)
class MailOptions:
    """What MAIL FROM's parameters asked for."""

    smtputf8: bool = False
    body_8bit: bool = False
    declared_size: int | None = None
    ret: Literal["FULL", "HDRS"] | None = None  # RFC 3461 §4.3
    envid: str | None = None  # RFC 3461 §4.4, decoded


@dataclass(frozen=True, slots=True)
class RecipientOptions:
    """What RCPT TO's parameters asked for (RFC 3461 §4.1, §4.2)."""

    notify: str | None = None  # "NEVER" or e.g. "FAILURE,DELAY"
    original: str | None = None  # "rfc822;user@example.org", decoded


def mail_options(path: Path, *, esmtp: bool, max_size: int) -> MailOptions:
    """Check MAIL FROM's parameters against what EHLO advertised (RFC 1870, 6152, 6531, 4954)."""
    if path.params and not esmtp:
        raise SmtpError(R.R555_PARAMETERS)
    smtputf8 = body_8bit = False
    size: int | None = None
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    for key, value in path.params.items():
        if key == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                raise SmtpError(R.R501_SIZE_PARAMETER)
            size = int(value)
            # RFC 1870 §6: a declared size over the limit is refused at MAIL.
            if size > max_size:
                raise SmtpError(R.R552_TOO_BIG, "size")
        elif key == "BODY":
            if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                raise SmtpError(R.R501_BODY_PARAMETER)
            body_8bit = value.upper() == "8BITMIME"
        elif key == "SMTPUTF8":
            if value is not None:
                raise SmtpError(R.R555_PARAMETERS)
            smtputf8 = True
        elif key == "RET":
            if value is None or value.upper() not in ("FULL", "HDRS"):
                raise SmtpError(R.R501_RET_PARAMETER)
            ret = "FULL" if value.upper() == "FULL" else "HDRS"
        elif key == "ENVID":
            envid = decode_xtext(value or "") if value and len(value) <= MAX_ENVID else None
            if not envid:
                raise SmtpError(R.R501_ENVID_PARAMETER)
        elif key == "AUTH":
            # RFC 4954 §5: the AUTH= parameter may be ignored by a server that does not trust
            # the client to assert identities; it is only checked to be present with a value.
            if value is None:
                raise SmtpError(R.R555_PARAMETERS)
        else:
            raise SmtpError(R.R555_PARAMETERS)
    if not path.ascii and not smtputf8:
        raise SmtpError(R.R553_NEEDS_SMTPUTF8)
    return MailOptions(smtputf8, body_8bit, size, ret, envid)


def rcpt_address(path: Path, options: MailOptions) -> str:
    """Check the UTF-8 rule for RCPT TO's address; the address."""
    if not path.ascii and not options.smtputf8:
        raise SmtpError(R.R553_NEEDS_SMTPUTF8)
    return path.address


def rcpt_options(path: Path) -> RecipientOptions:
    """RCPT TO's parameters: NOTIFY and ORCPT (RFC 3461), nothing else."""
    notify = original = None
    for key, value in path.params.items():
        if key == "NOTIFY":
            words = (value or "").upper().split(",")
            if words == ["NEVER"]:
                notify = "NEVER"
            elif not value or len(set(words)) != len(words) or set(words) - set(NOTIFY_VALUES):
                raise SmtpError(R.R501_NOTIFY_PARAMETER)
            else:
                notify = ",".join(w for w in NOTIFY_VALUES if w in words)
        elif key == "ORCPT":
            addr_type, semicolon, xtext = (value or "").partition(";")
            address = decode_xtext(xtext) if semicolon else None
            if (
                not value
                or len(value) > MAX_ORCPT
                or not _ADDR_TYPE.fullmatch(addr_type)
                or not address
            ):
                raise SmtpError(R.R501_ORCPT_PARAMETER)
            original = f"{addr_type.lower()};{address}"
        else:
            raise SmtpError(R.R555_PARAMETERS)
    return RecipientOptions(notify, original)


def parse_helo(arg: str) -> str:
    """EHLO/HELO's domain (RFC 5321 §4.1.1.1); lenient beyond being one printable word."""
    if not arg or " " in arg or not arg.isprintable() or len(arg) > 255:
        raise SmtpError(R.R501_HELO_SYNTAX)
    if any("\udc80" <= c <= "\udcff" for c in arg):
        raise SmtpError(R.R501_HELO_SYNTAX)
    return arg


# --------------------------------------------------------------------------------------------
# AUTH (RFC 4954); what PLAIN and LOGIN responses mean is `postroom.sasl`'s.

AUTH_MECHANISMS = sasl.MECHANISMS
LOGIN_USERNAME_CHALLENGE = f"334 {sasl.LOGIN_USERNAME}\r\n".encode()
LOGIN_PASSWORD_CHALLENGE = f"334 {sasl.LOGIN_PASSWORD}\r\n".encode()
PLAIN_CHALLENGE = b"334 \r\n"
# How a SASL problem is answered (RFC 4954 §4: 501 for a cancelled or undecodable exchange).
SASL_REPLIES: dict[sasl.SaslProblem, tuple[Reply, str | None]] = {
    "cancelled": (R.R501_AUTH_CANCELLED, None),
    "malformed": (R.R501_AUTH_BASE64, None),
    "authzid": (R.R535_AUTH_FAILED, "auth_failed"),
}


def parse_auth(arg: str) -> tuple[str, str | None]:
    """``AUTH PLAIN [initial-response]`` → ("PLAIN", response or None)."""
    parts = arg.split(" ")
    if not arg or len(parts) > 2 or not parts[0]:
        raise SmtpError(R.R501_AUTH_SYNTAX)
    mechanism = parts[0].upper()
    if mechanism not in AUTH_MECHANISMS:
        raise SmtpError(R.R504_AUTH_MECHANISM)
    return mechanism, parts[1] if len(parts) == 2 else None
