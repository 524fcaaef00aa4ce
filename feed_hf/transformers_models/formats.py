"""Which loader a teacher or student spec goes to: timm's or transformers', decided by the checkpoint's format.

A folder or Hub repo whose `config.json` names a `model_type` is a transformers model (`transformers_sources.
checkpoint_format`); one naming an `architecture` is timm's, as is every other spec (a timm name, `NAME=FILE`).
The teacher and student loaders ask `is_transformers_spec` first, so one spec syntax serves both formats.
"""

from __future__ import annotations

from pathlib import Path

from ..teachers.spec_kwargs import split_model_kwargs
from .sources import source_checkpoint_format

__all__ = ["is_transformers_spec", "transformers_spec_parts"]


def is_transformers_spec(spec: str) -> bool:
    """Whether `spec` (`hf-hub:ns/name[@rev]`, `local-dir:PATH` or a folder, with or without `?key=value`) points
    at a transformers-format model. A Hub repo's config.json is fetched (cached) under the same offline rules."""
    base, _ = transformers_spec_parts(spec)
    if not (base.startswith(("hf-hub:", "local-dir:")) or Path(base).is_dir()):
        return False
    return source_checkpoint_format(base) == "transformers"


def transformers_spec_parts(spec: str) -> tuple[str, dict]:
    """(`spec` without its `?key=value` options, those options); a folder whose name holds `?` is that folder."""
    if Path(spec).is_dir():
        return spec, {}
    return split_model_kwargs(spec)
