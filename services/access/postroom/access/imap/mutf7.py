"""Modified UTF-7, the encoding of IMAP mailbox names (RFC 3501 §5.1.3)."""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["decode", "encode"]

# RFC 3501 §5.1.3: "printable US-ASCII characters, except for "&", represent themselves;
# that is, characters with octet values 0x20-0x25 and 0x27-0x7e."
_PRINTABLE_FIRST = 0x20
_PRINTABLE_LAST = 0x7E

# Modified BASE64: the [UTF-7] alphabet with "," instead of "/", no "=" padding.
_MODIFIED_BASE64 = re.compile(r"[A-Za-z0-9+,]*")


def _is_printable(char: str) -> bool:
    return _PRINTABLE_FIRST <= ord(char) <= _PRINTABLE_LAST


def _shift_out(run: list[str]) -> str:
    """Encode a run of non-printable characters as "&" modified-BASE64 "-"."""
    try:
        utf16 = "".join(run).encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise ValueError("mailbox name contains a lone surrogate") from exc
    encoded = base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ",")
    return f"&{encoded}-"


def encode(name: str) -> str:
    """Encode a mailbox name for the wire, in the one canonical form RFC 3501 §5.1.3 allows.

    Raises ValueError for a name that cannot be encoded (a lone surrogate).
    """
    out: list[str] = []
    run: list[str] = []
    for char in name:
        if _is_printable(char):
            if run:
                out.append(_shift_out(run))
                run = []
            # "&" (0x26) is represented by the two-octet sequence "&-".
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    if run:
        # A name that ends with a Unicode 16-bit octet MUST end with a "-".
        out.append(_shift_out(run))
    return "".join(out)


def _shift_in(encoded: str) -> str:
    """Decode the modified BASE64 between "&" and "-"."""
    if not _MODIFIED_BASE64.fullmatch(encoded):
        raise ValueError(f"invalid modified BASE64 in mailbox name: {encoded!r}")
    padded = encoded.replace(",", "/") + "=" * (-len(encoded) % 4)
    try:
        utf16 = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid modified BASE64 in mailbox name: {encoded!r}") from exc
    if len(utf16) % 2:
        raise ValueError(f"mailbox name holds a partial UTF-16 unit: {encoded!r}")
    try:
        text = utf16.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid UTF-16 in mailbox name: {encoded!r}") from exc
    if any(_is_printable(char) for char in text):
        # "Modified BASE64 MUST NOT be used to represent any printing US-ASCII character
        # which can represent itself."
        raise ValueError(f"mailbox name encodes printable US-ASCII: {encoded!r}")
    return text


def decode(wire: str) -> str:
    """Decode a mailbox name received on the wire.

    Raises ValueError unless `wire` is well-formed modified UTF-7 in canonical form (the
    form `encode` produces), so that every mailbox has exactly one wire name.
    """
    out: list[str] = []
    index = 0
    while index < len(wire):
        char = wire[index]
        if not _is_printable(char):
            raise ValueError(f"mailbox name holds a character outside US-ASCII: {char!r}")
        if char != "&":
            out.append(char)
            index += 1
            continue
        end = wire.find("-", index + 1)
        if end < 0:
            # All names "MUST end in US-ASCII".
            raise ValueError("unterminated modified BASE64 in mailbox name")
        if end == index + 1:
            out.append("&")
        else:
            out.append(_shift_in(wire[index + 1 : end]))
        index = end + 1
    name = "".join(out)
    if encode(name) != wire:
        # Left-over bits that are not zero, or two adjacent encoded runs: the same name
        # would have two wire forms.
        raise ValueError(f"mailbox name is not in canonical modified UTF-7: {wire!r}")
    return name
