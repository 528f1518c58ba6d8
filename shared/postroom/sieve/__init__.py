"""Sieve mail filtering (RFC 5228 and extensions): compile scripts, run them on a message."""

from postroom.sieve.actions import Action, FileInto, Keep, Outcome, Redirect, Reject, Vacation
from postroom.sieve.compiler import EXTENSIONS, CompiledScript, compile_script
from postroom.sieve.errors import SieveError, SieveRuntimeError, SieveSyntaxError
from postroom.sieve.interpreter import Context, Limits, run
from postroom.sieve.mail import Envelope, MessageView

__all__ = [
    "EXTENSIONS",
    "Action",
    "CompiledScript",
    "Context",
    "Envelope",
    "FileInto",
    "Keep",
    "Limits",
    "MessageView",
    "Outcome",
    "Redirect",
    "Reject",
    "SieveError",
    "SieveRuntimeError",
    "SieveSyntaxError",
    "Vacation",
    "compile_script",
    "run",
]
