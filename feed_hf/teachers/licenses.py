"""A model's licence, read from its model card, and what it says about distilling a student from it.

A student trained to reproduce a teacher's features may be a derivative of that teacher. `license_verdict` says,
for a log line and the student's card, whether the teacher's licence forbids derivatives (the Creative Commons
"-nd" licences), restricts their use (non-commercial), or is unknown (no licence, `other`, or an identifier not
listed here): feed-hf states it; it does not decide for the user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LicenseVerdict", "card_license", "license_verdict"]

logger = logging.getLogger(__name__)

# Hub licence identifiers (https://huggingface.co/docs/hub/repositories-licenses) known to permit derivatives.
_PERMISSIVE = {
    "apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "isc", "zlib", "unlicense",
    "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "odc-by",
    "pddl", "artistic-2.0", "ecl-2.0", "afl-3.0", "bsl-1.0", "mpl-2.0", "epl-1.0", "epl-2.0", "gpl", "gpl-2.0",
    "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "agpl-3.0", "openrail", "openrail++", "creativeml-openrail-m",
    "bigscience-openrail-m", "bigcode-openrail-m", "wtfpl", "postgresql", "ncsa", "osl-3.0", "eupl-1.1", "eupl-1.2",
}  # fmt: skip
# Known to permit derivatives for non-commercial use only.
_NON_COMMERCIAL = {f"cc-by-nc{kind}-{version}" for kind in ("", "-sa") for version in ("2.0", "3.0", "4.0")}


@dataclass(frozen=True)
class LicenseVerdict:
    """`license` as the card names it (None: none); `forbids_derivatives`; `known`: listed here; `note`: one line."""

    license: str | None
    forbids_derivatives: bool
    known: bool
    note: str


def card_license(folder: str | Path) -> str | None:
    """The `license` of the model card (`README.md` front matter) in `folder`; `other` with its `license_name`
    as `other:NAME`; None when there is no card or it names none."""
    from huggingface_hub import ModelCard

    readme = Path(folder) / "README.md"
    if not readme.is_file():
        return None
    try:
        data = ModelCard.load(readme, ignore_metadata_errors=True).data
    except (ValueError, OSError, UnicodeDecodeError) as error:
        logger.warning("the model card %s could not be read (%s); licence unknown", readme.name, error)
        return None
    license_id = data.license
    if isinstance(license_id, list):
        license_id = ",".join(str(item) for item in license_id)
    if not license_id:
        return None
    name = data.get("license_name")
    return f"other:{name}" if license_id == "other" and name else str(license_id)


def license_verdict(license_id: str | None) -> LicenseVerdict:
    """What `license_id` (one or several, comma-separated) says about publishing a student distilled from it."""
    if not license_id:
        return LicenseVerdict(None, False, False, "licence unknown (the model card names none): check its terms")
    ids = [part.strip().lower() for part in license_id.split(",") if part.strip()]
    no_derivatives = [part for part in ids if "-nd" in part.split(":")[0]]
    if no_derivatives:
        return LicenseVerdict(
            license_id,
            True,
            True,
            f"licence {no_derivatives[0]} forbids derivatives: a student distilled from this model may be one; do "
            "not publish it without the rights holder's permission",
        )
    unknown = [part for part in ids if part not in _PERMISSIVE and part not in _NON_COMMERCIAL]
    if unknown:
        return LicenseVerdict(
            license_id, False, False, f"licence {unknown[0]} is not one feed-hf knows: check that it allows derivatives"
        )
    if any(part in _NON_COMMERCIAL for part in ids):
        return LicenseVerdict(
            license_id, False, True, f"licence {license_id} allows derivatives for non-commercial use only"
        )
    return LicenseVerdict(license_id, False, True, f"licence {license_id} allows derivatives")
