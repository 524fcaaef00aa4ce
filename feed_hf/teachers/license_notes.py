"""The card's words on sources whose licence restricts a distilled student (forbids derivatives, non-commercial)."""

from __future__ import annotations

from .licenses import license_verdict

__all__ = ["restricting_licences"]


def restricting_licences(sources: list[dict]) -> str:
    """One sentence per source (`{"role", "name", "license"}`) whose licence forbids derivatives or allows only
    non-commercial use, as `license_verdict` words it; "" when none does. feed-hf states it; it decides nothing."""
    notes = []
    for source in sources:
        verdict = license_verdict(source.get("license"))
        if verdict.forbids_derivatives or (verdict.known and "non-commercial" in verdict.note):
            notes.append(f" **{source['role']} `{source['name']}`: {verdict.note}.**")
    return "".join(notes)
