"""The error types every Postroom component raises and catches."""

from __future__ import annotations


class PostroomError(Exception):
    """Base of every error Postroom raises on purpose."""


class ConfigError(PostroomError):
    """A setting is missing or invalid; the message names the variable."""


class StoreError(PostroomError):
    """A store operation was refused; the message is fit to show to the user."""


class NotFound(StoreError):
    """The named domain, account, mailbox, message or queue entry does not exist."""


class AlreadyExists(StoreError):
    """Creating something whose name is taken."""


class InvalidInput(StoreError):
    """A malformed address, mailbox name, flag or other argument."""


class HasChildren(InvalidInput):
    """Deleting a name that only holds other mailboxes (IMAP ``[HASCHILDREN]``, RFC 9051
    §6.3.5 and §7.1)."""


class LimitExceeded(StoreError):
    """A server limit refuses the operation as asked (IMAP ``[LIMIT]``, RFC 5530 §3)."""


class QueryTimeout(LimitExceeded):
    """Postgres cancelled a statement that ran past ``statement_timeout``."""


class QuotaExceeded(StoreError):
    """The operation would take an account past its quota (IMAP ``[OVERQUOTA]``, SMTP 5.2.2)."""


class AuthenticationFailed(StoreError):
    """Wrong address or password, or a disabled account. Never says which."""


class DeliveryFailure(PostroomError):
    """A delivery attempt failed; carries the SMTP reply that describes why."""

    permanent: bool = False

    def __init__(
        self,
        code: int,
        enhanced: str,
        text: str,
        *,
        host: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(f"{code} {enhanced} {text}")
        self.code = code
        self.enhanced = enhanced
        self.text = text
        self.host = host
        self.__cause__ = cause

    @property
    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


class PermanentFailure(DeliveryFailure):
    """A 5xx outcome: never retried, the recipient bounces."""

    permanent = True


class TransientFailure(DeliveryFailure):
    """A 4xx outcome, timeout or connection failure: retried later."""

    permanent = False
