"""Store values to API bodies."""

from __future__ import annotations

from postroom.api import schemas
from postroom.store.types import Account, QueueEntry


def account_public(account: Account) -> schemas.AccountPublic:
    return schemas.AccountPublic(
        id=account.id,
        address=account.address,
        is_admin=account.is_admin,
        disabled=account.disabled,
        quota_bytes=account.quota_bytes,
        created_at=account.created_at,
        used_bytes=account.used_bytes,
        used_messages=account.used_messages,
        quota_messages=account.quota_messages,
        send_as=list(account.send_as),
    )


def queue_entry_public(entry: QueueEntry) -> schemas.QueueEntryPublic:
    m = entry.message
    return schemas.QueueEntryPublic(
        id=m.id,
        message_id=m.message_id,
        reverse_path=m.reverse_path,
        received_at=m.received_at,
        source=m.source,
        client_address=m.client_address,
        client_name=m.client_name,
        helo_name=m.helo_name,
        protocol=m.protocol,
        tls=m.tls,
        size=m.size,
        bounce_of=m.bounce_of,
        deliveries=[
            schemas.DeliveryPublic(
                id=d.id,
                recipient=d.recipient,
                original_recipient=d.original_recipient,
                state=d.state,
                attempts=d.attempts,
                next_attempt_at=d.next_attempt_at,
                last_error=d.last_error,
                last_attempt_at=d.last_attempt_at,
                finished_at=d.finished_at,
                dsn_queue_id=d.dsn_queue_message_id,
                failures=d.failures,
                last_failure=d.last_failure,
            )
            for d in entry.deliveries
        ],
    )
