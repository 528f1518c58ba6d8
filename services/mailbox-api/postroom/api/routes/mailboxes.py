"""Folders: list with counts, create, rename, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response

from postroom import store
from postroom.api import schemas
from postroom.api.deps import AccountDep, ConnDep, owned_mailbox
from postroom.db import Conn
from postroom.store.types import Mailbox

router = APIRouter(prefix="/api/v1/mailboxes", tags=["mailboxes"])


async def folder_public(conn: Conn, mailbox: Mailbox) -> schemas.FolderPublic:
    status = await store.mailbox_status(conn, mailbox.id)
    return schemas.FolderPublic(
        id=mailbox.id,
        name=mailbox.name,
        special_use=mailbox.special_use,
        selectable=mailbox.selectable,
        subscribed=mailbox.subscribed,
        messages=status.messages,
        unseen=status.unseen,
        size=status.size,
        uid_validity=mailbox.uid_validity,
        uid_next=status.uid_next,
    )


@router.get("", response_model=list[schemas.FolderPublic])
async def list_folders(account: AccountDep, conn: ConnDep) -> list[schemas.FolderPublic]:
    """The caller's folders with message, unread and size counts, sorted by name."""
    return [await folder_public(conn, m) for m in await store.list_mailboxes(conn, account.id)]


@router.post("", response_model=schemas.FolderPublic, status_code=201)
async def create_folder(
    body: schemas.FolderCreate, account: AccountDep, conn: ConnDep
) -> schemas.FolderPublic:
    """Create a folder ('/' separates levels; missing parents are created)."""
    mailbox = await store.create_mailbox(conn, account.id, body.name)
    return await folder_public(conn, mailbox)


@router.get("/{mailbox_id}", response_model=schemas.FolderPublic)
async def get_folder(mailbox_id: int, account: AccountDep, conn: ConnDep) -> schemas.FolderPublic:
    return await folder_public(conn, await owned_mailbox(conn, account, mailbox_id))


@router.patch("/{mailbox_id}", response_model=schemas.FolderPublic)
async def rename_folder(
    mailbox_id: int, body: schemas.FolderUpdate, account: AccountDep, conn: ConnDep
) -> schemas.FolderPublic:
    """Rename a folder with its children (renaming INBOX moves its mail, RFC 3501 §6.3.5)."""
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    renamed = await store.rename_mailbox(conn, account.id, mailbox.name, body.name)
    return await folder_public(conn, renamed)


@router.delete("/{mailbox_id}", status_code=204)
async def delete_folder(mailbox_id: int, account: AccountDep, conn: ConnDep) -> Response:
    """Delete a folder and its messages (INBOX cannot be deleted)."""
    mailbox = await owned_mailbox(conn, account, mailbox_id)
    await store.delete_mailbox(conn, account.id, mailbox.name)
    return Response(status_code=204)
