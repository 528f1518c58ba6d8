"""Sender authentication of received mail: SPF, DKIM, DMARC and ARC, and their header."""

from postroom.mailauth.check import Disposition, authenticate, disposition
from postroom.mailauth.results import (
    ARCResult,
    AuthResults,
    DKIMResult,
    DMARCResult,
    SPFResult,
    authentication_results,
    remove_our_authentication_results,
)

__all__ = [
    "ARCResult",
    "AuthResults",
    "DKIMResult",
    "DMARCResult",
    "Disposition",
    "SPFResult",
    "authenticate",
    "authentication_results",
    "disposition",
    "remove_our_authentication_results",
]
