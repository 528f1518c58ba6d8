"""What a Sieve run decided for one message: the actions, in order, after duplicates are merged."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keep:
    """Store in the default mailbox (RFC 5228 §4.3); ``implicit`` for the implicit keep."""

    flags: tuple[str, ...] = ()
    implicit: bool = False


@dataclass(frozen=True, slots=True)
class FileInto:
    """RFC 5228 §4.1, RFC 5490 §3.2 (:create), RFC 5232 §5 (:flags)."""

    mailbox: str
    flags: tuple[str, ...] = ()
    create: bool = False


@dataclass(frozen=True, slots=True)
class Redirect:
    """RFC 5228 §4.2; with :copy (RFC 3894) the implicit keep stays."""

    address: str
    copy: bool = False


@dataclass(frozen=True, slots=True)
class Reject:
    """RFC 5429: refuse the message with a reason; ``extended`` for ereject."""

    reason: str
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Vacation:
    """RFC 5230 §4 (and RFC 6131 seconds): an auto-reply, if its checks let it go."""

    reason: str
    seconds: int
    subject: str | None = None
    from_address: str | None = None
    addresses: tuple[str, ...] = ()
    mime: bool = False
    handle: str = ""


Action = Keep | FileInto | Redirect | Reject | Vacation


@dataclass(frozen=True, slots=True)
class Outcome:
    """The actions to take, in order; ``error`` when the run failed and only the keep is left."""

    actions: tuple[Action, ...]
    error: str | None = None

    @property
    def kept(self) -> bool:
        return any(isinstance(a, Keep) for a in self.actions)

    @property
    def discarded(self) -> bool:
        """Nothing stored anywhere, nothing sent on: RFC 5228 §4.4."""
        return not any(isinstance(a, Keep | FileInto | Redirect | Reject) for a in self.actions)
