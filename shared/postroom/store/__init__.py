"""The mail store: the one typed API through which every service touches mail data.

Every function takes an open ``postroom.db.Conn`` in autocommit mode as its first argument
and makes its own changes atomic (a function that writes several rows opens a transaction, or
a savepoint inside the caller's). Values come back as frozen dataclasses from
``postroom.store.types``.
"""

from postroom.store.accounts import (
    add_alias,
    addresses_of,
    authenticate,
    create_account,
    create_domain,
    delete_account,
    delete_domain,
    get_account,
    get_account_by_id,
    get_domain,
    is_local_domain,
    list_accounts,
    list_aliases,
    list_domains,
    mailbox_usage,
    remove_alias,
    resolve,
    set_password,
    update_account,
)
from postroom.store.mailboxes import (
    claim_recent,
    create_mailbox,
    delete_mailbox,
    first_unseen_uid,
    get_mailbox,
    get_mailbox_by_id,
    get_special_use,
    list_mailboxes,
    mailbox_status,
    normalize_name,
    rename_mailbox,
    set_subscribed,
    try_lock_maildrop,
    unlock_maildrop,
)
from postroom.store.messages import (
    append_message,
    changes_since,
    copy_messages,
    delete_messages,
    expunge,
    fetch_content,
    fetch_raw,
    fetch_raw_many,
    gc_blobs,
    get_message,
    list_flags,
    list_messages,
    list_uids,
    move_messages,
    put_blob,
    read_blob_chunks,
    read_blob_range,
    read_raw_chunks,
    seq_to_uid,
    store_flags,
    uid_to_seq,
)
from postroom.store.notify import ChangeHub, Subscription, listen, notify
from postroom.store.types import *  # noqa: F403 - the value types are part of this API

__all__ = [
    "ChangeHub", "Subscription",
    "add_alias", "addresses_of", "append_message", "authenticate", "changes_since",
    "claim_recent", "copy_messages", "create_account", "create_domain", "create_mailbox",
    "delete_account", "delete_domain", "delete_mailbox", "delete_messages", "expunge",
    "fetch_content", "fetch_raw", "fetch_raw_many", "first_unseen_uid", "gc_blobs", "get_account",
    "get_account_by_id",
    "get_domain", "get_mailbox", "get_mailbox_by_id", "get_message", "get_special_use",
    "is_local_domain", "list_accounts", "list_aliases", "list_domains", "list_flags",
    "list_mailboxes", "list_messages", "list_uids", "listen", "mailbox_status",
    "mailbox_usage", "move_messages", "normalize_name", "notify", "put_blob",
    "read_blob_chunks", "read_blob_range",
    "read_raw_chunks", "remove_alias", "rename_mailbox", "resolve", "seq_to_uid",
    "set_password", "set_subscribed", "store_flags", "try_lock_maildrop", "uid_to_seq",
    "unlock_maildrop", "update_account",
]  # fmt: skip
