"""Two-factor setup over the API: the key, its otpauth:// URI (RFC 6238 parameters) and the
same URI as a QR code drawn on the server as SVG."""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET

from tests.integration.api.conftest import User

SVG = "{http://www.w3.org/2000/svg}"


async def test_setup_answers_the_key_its_uri_and_a_qr_code_of_it(alice: User) -> None:
    reply = await alice.client.post(
        "/api/v1/account/two-factor/setup", json={"password": alice.password}
    )
    assert reply.status_code == 200, reply.text
    setup = reply.json()
    uri = urllib.parse.urlsplit(setup["uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert urllib.parse.parse_qs(uri.query)["secret"] == [setup["secret"]]
    svg = ET.fromstring(setup["qr_svg"])  # noqa: S314 - our own answer, in a test
    assert svg.tag == f"{SVG}svg"
    assert svg.findtext(f"{SVG}title") == "QR code of the two-factor key"
    # A square of whole modules: (17 + 4 × version + 2 × 4 quiet) modules of 4 px.
    width, height = int(svg.attrib["width"]), int(svg.attrib["height"])
    assert width == height
    assert width % 4 == 0
    assert (width // 4 - 25) % 4 == 0


async def test_the_qr_code_is_on_white_for_a_dark_page(alice: User) -> None:
    reply = await alice.client.post(
        "/api/v1/account/two-factor/setup", json={"password": alice.password}
    )
    svg = ET.fromstring(reply.json()["qr_svg"])  # noqa: S314 - our own answer, in a test
    assert next(p.attrib.get("fill") for p in svg.iter(f"{SVG}path")) == "#fff"


async def test_setup_needs_the_password(alice: User) -> None:
    reply = await alice.client.post(
        "/api/v1/account/two-factor/setup", json={"password": "not-" + alice.password}
    )
    assert reply.status_code == 403
    assert "qr_svg" not in reply.json()
