"""Mail client setup documents built from the real listeners: Thunderbird's autoconfig XML,
Microsoft's Autodiscover (POX) answer and an Apple configuration profile."""

from __future__ import annotations

import plistlib
import uuid

# Building only: requests from outside are parsed by defusedxml.
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from postroom.config import Settings

AUTODISCOVER_REQUEST_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
)
AUTODISCOVER_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
AUTODISCOVER_OUTLOOK_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)


@dataclass(frozen=True, slots=True)
class Server:
    """One listener a client can use: protocol, port and how TLS starts."""

    protocol: str  # imap, pop3, smtp
    port: int
    implicit_tls: bool


def servers(settings: Settings) -> list[Server]:
    """Each protocol's listeners, implicit TLS first (RFC 8314 §3, §4: preferred to STARTTLS)."""
    return [
        Server("imap", settings.imaps_port, implicit_tls=True),
        Server("imap", settings.imap_port, implicit_tls=False),
        Server("pop3", settings.pop3s_port, implicit_tls=True),
        Server("pop3", settings.pop3_port, implicit_tls=False),
        Server("smtp", settings.submissions_port, implicit_tls=True),
        Server("smtp", settings.submission_port, implicit_tls=False),
    ]


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _xml(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def thunderbird(domain: str, settings: Settings) -> bytes:
    """Thunderbird's autoconfig file (config-v1.1.xml) for a domain."""
    root = ET.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider", id=domain)
    _sub(provider, "domain", domain)
    _sub(provider, "displayName", f"{domain} mail")
    _sub(provider, "displayShortName", domain)
    for server in servers(settings):
        tag = "outgoingServer" if server.protocol == "smtp" else "incomingServer"
        element = _sub(provider, tag, type=server.protocol)
        _sub(element, "hostname", settings.hostname)
        _sub(element, "port", str(server.port))
        _sub(element, "socketType", "SSL" if server.implicit_tls else "STARTTLS")
        # Passwords only ever go over TLS, so the plain form is safe and what we check.
        _sub(element, "authentication", "password-cleartext")
        _sub(element, "username", "%EMAILADDRESS%")
    return _xml(root)


class BadRequest(ValueError):
    """An Autodiscover request that is not XML or names no address."""


def autodiscover_address(body: bytes) -> str:
    """The EMailAddress of an Autodiscover POX request."""
    try:
        root = SafeET.fromstring(body)
    except (SafeET.ParseError, DefusedXmlException) as exc:
        raise BadRequest(f"not an Autodiscover request: {exc}") from None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "EMailAddress" and element.text:
            return str(element.text).strip()
    raise BadRequest("the request names no EMailAddress")


def autodiscover(address: str, settings: Settings) -> bytes:
    """The POX answer (Outlook response schema 2006a) with IMAP, POP3 and SMTP settings."""
    ET.register_namespace("", AUTODISCOVER_NS)
    root = ET.Element(f"{{{AUTODISCOVER_NS}}}Autodiscover")
    response = _sub(root, f"{{{AUTODISCOVER_OUTLOOK_NS}}}Response")
    account = _sub(response, f"{{{AUTODISCOVER_OUTLOOK_NS}}}Account")
    _sub(account, f"{{{AUTODISCOVER_OUTLOOK_NS}}}AccountType", "email")
    _sub(account, f"{{{AUTODISCOVER_OUTLOOK_NS}}}Action", "settings")
    for server in servers(settings):
        if not server.implicit_tls:
            continue  # one entry per protocol: the implicit TLS one
        protocol = _sub(account, f"{{{AUTODISCOVER_OUTLOOK_NS}}}Protocol")
        for tag, value in (
            ("Type", server.protocol.upper()),
            ("Server", settings.hostname),
            ("Port", str(server.port)),
            ("LoginName", address),
            ("SSL", "on"),
            ("SPA", "off"),
            ("AuthRequired", "on"),
        ):
            _sub(protocol, f"{{{AUTODISCOVER_OUTLOOK_NS}}}{tag}", value)
    return _xml(root)


def apple_profile(address: str, settings: Settings) -> bytes:
    """An unsigned configuration profile (.mobileconfig) with one IMAP account."""
    imaps = settings.imaps_port
    submissions = settings.submissions_port
    # The same identifiers each time: installing it again replaces the earlier one.
    ident = f"{'.'.join(reversed(settings.hostname.split('.')))}.mail.{address}"
    account_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{address}#account"))
    profile_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{address}#profile"))
    payload = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{ident}.account",
        "PayloadUUID": account_uuid,
        "PayloadDisplayName": address,
        "EmailAccountDescription": address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": address,
        "IncomingMailServerHostName": settings.hostname,
        "IncomingMailServerPortNumber": imaps,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": settings.hostname,
        "OutgoingMailServerPortNumber": submissions,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": ident,
        "PayloadUUID": profile_uuid,
        "PayloadDisplayName": f"Mail: {address}",
        "PayloadContent": [payload],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
