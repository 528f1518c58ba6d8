"""What smtp-in's checks found for a queued message, in words for the traces (CLI, API)."""

from __future__ import annotations

from typing import Any

JUNK = "\\Junk"


def describe(checks: dict[str, Any] | None, target_special_use: str | None = None) -> list[str]:
    """One line per check: sender authentication, the spam filter, where the message goes."""
    if not checks:
        return []
    lines = []
    summary = checks.get("auth_summary")
    if isinstance(summary, dict):
        auth = checks.get("auth") or {}
        dmarc = auth.get("dmarc") or {}
        # jsonb keeps no key order: the methods in the order they are checked.
        words = [f"{m}={summary[m]}" for m in ("spf", "dkim", "dmarc", "arc") if m in summary]
        if dmarc.get("from_domain"):
            policy = f" p={dmarc['policy']}" if dmarc.get("policy") else ""
            words.append(f"(From {dmarc['from_domain']}{policy})")
        lines.append("authentication: " + " ".join(words))
    spam = checks.get("spam")
    if isinstance(spam, dict):
        if "error" in spam:
            lines.append(f"spam filter: not scanned ({spam['error']})")
        else:
            strongest = sorted(spam["symbols"].items(), key=lambda kv: (-abs(kv[1]), kv[0]))
            symbols = ", ".join(f"{name}({score:g})" for name, score in strongest[:10])
            lines.append(
                f"spam filter: {spam['action']}, score {spam['score']:g} of "
                f"{spam['required_score']:g}" + (f"; {symbols}" if symbols else "")
            )
    if target_special_use == JUNK:
        by = checks.get("quarantined_by", "the checks")
        lines.append(f"filed into Junk (by {by})")
    return lines
