"""The reader's own lists: senders whose remote images are shown, contacts for autocomplete,
and identities (a From name and a signature per address)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from postroom import store
from postroom.api.deps import AccountDep, ConnDep
from postroom.api.problems import Problem
from postroom.store import preferences

router = APIRouter(prefix="/api/v1", tags=["preferences"])


class ImageSender(BaseModel):
    sender: str = Field(min_length=3, max_length=320)


class ContactPublic(BaseModel):
    id: int
    address: str
    name: str | None
    uses: int
    last_used: datetime | None


class ContactSave(BaseModel):
    address: str = Field(min_length=3, max_length=320)
    name: str | None = Field(default=None, max_length=200)


class IdentityPublic(BaseModel):
    address: str
    name: str | None
    signature: str | None


class IdentitySave(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    signature: str | None = Field(default=None, max_length=10_000)


@router.get("/remote-images", response_model=list[str])
async def image_senders(account: AccountDep, conn: ConnDep) -> list[str]:
    """Senders whose messages show their remote images without asking."""
    return await preferences.image_senders(conn, account.id)


@router.post("/remote-images", status_code=204)
async def allow_images(body: ImageSender, account: AccountDep, conn: ConnDep) -> Response:
    await preferences.allow_images_from(conn, account.id, body.sender)
    return Response(status_code=204)


@router.delete("/remote-images", status_code=204)
async def forget_images(
    account: AccountDep, conn: ConnDep, sender: Annotated[str, Query(max_length=320)]
) -> Response:
    await preferences.forget_image_sender(conn, account.id, sender)
    return Response(status_code=204)


def _contact(c: preferences.Contact) -> ContactPublic:
    return ContactPublic(
        id=c.id, address=c.address, name=c.name, uses=c.uses, last_used=c.last_used
    )


@router.get("/contacts", response_model=list[ContactPublic])
async def contacts(
    account: AccountDep,
    conn: ConnDep,
    q: Annotated[str, Query(max_length=320)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> list[ContactPublic]:
    """Contacts whose address or name starts with ``q``, most written to first (kept from
    the mail the account sends, and edited here)."""
    return [_contact(c) for c in await preferences.find_contacts(conn, account.id, q, limit=limit)]


@router.post("/contacts", response_model=ContactPublic, status_code=201)
async def save_contact(body: ContactSave, account: AccountDep, conn: ConnDep) -> ContactPublic:
    """Add a contact, or rename the one with this address."""
    return _contact(await preferences.save_contact(conn, account.id, body.address, body.name))


@router.delete("/contacts/{contact_id}", status_code=204)
async def delete_contact(contact_id: int, account: AccountDep, conn: ConnDep) -> Response:
    if not 0 < contact_id < 2**63:
        raise Problem(404, f"contact {contact_id} does not exist")
    await preferences.delete_contact(conn, account.id, contact_id)
    return Response(status_code=204)


@router.get("/identities", response_model=list[IdentityPublic])
async def identities(account: AccountDep, conn: ConnDep) -> list[IdentityPublic]:
    """One identity per address the account may send as (its own, its aliases and its
    send-as addresses; not each address of a ``*@domain`` entry)."""
    saved = await preferences.identities(conn, account.id)
    out = []
    for address in (await store.senders_of(conn, account.id))[0]:
        found = saved.get(address)
        out.append(
            IdentityPublic(
                address=address,
                name=found.name if found else None,
                signature=found.signature if found else None,
            )
        )
    return out


@router.put("/identities/{address}", response_model=IdentityPublic)
async def save_identity(
    address: str, body: IdentitySave, account: AccountDep, conn: ConnDep
) -> IdentityPublic:
    """Set the From name and signature used when sending as this address."""
    if address.strip().lower() not in (await store.senders_of(conn, account.id))[0]:
        raise Problem(404, f"{address} is not one of your addresses")
    saved = await preferences.save_identity(conn, account.id, address, body.name, body.signature)
    return IdentityPublic(address=saved.address, name=saved.name, signature=saved.signature)


class ListPreferences(BaseModel):
    conversations: bool = Field(description="list folders one row per conversation")


@router.get("/preferences", response_model=ListPreferences)
async def list_preferences(account: AccountDep, conn: ConnDep) -> ListPreferences:
    """The reader's choices for the message list."""
    return ListPreferences(conversations=await preferences.list_by_conversation(conn, account.id))


@router.put("/preferences", response_model=ListPreferences)
async def save_list_preferences(
    body: ListPreferences, account: AccountDep, conn: ConnDep
) -> ListPreferences:
    await preferences.set_list_by_conversation(conn, account.id, body.conversations)
    return body
