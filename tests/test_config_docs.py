"""FeedConfig is documented as transformers documents TrainingArguments: an `Args:` entry and a help text per field."""

from __future__ import annotations

import dataclasses
import re

import pytest
from transformers import TrainingArguments

from feed_hf import FeedConfig

_ENTRY = re.compile(r"^        (\w+) \(`(.+?)`, \*optional\*, defaults to `(.*?)`\):$", re.MULTILINE)


def _own_fields() -> list[dataclasses.Field]:
    """Fields FeedConfig adds to TrainingArguments or declares again with a default of its own."""
    inherited = TrainingArguments.__dataclass_fields__
    redeclared = FeedConfig.__dict__["__annotations__"]
    return [f for f in dataclasses.fields(FeedConfig) if f.name not in inherited or f.name in redeclared]


def _default(spec: dataclasses.Field):
    return spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default


def _rendered(value) -> str:
    # doc-builder's convention (TrainingArguments): strings in double quotes, everything else as Python writes it.
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _documented_defaults() -> dict[str, str]:
    args = FeedConfig.__doc__.split("\n    Args:\n", 1)[1]
    return {name: default for name, _type, default in _ENTRY.findall(args)}


def test_feed_config_docstring_has_an_args_section() -> None:
    assert "\n    Args:\n" in FeedConfig.__doc__
    assert "Defaults decided for FEED" in FeedConfig.__doc__


@pytest.mark.parametrize("spec", _own_fields(), ids=lambda spec: spec.name)
def test_every_feed_config_field_has_an_args_entry_with_its_default(spec: dataclasses.Field) -> None:
    documented = _documented_defaults()
    assert spec.name in documented, f"FeedConfig.__doc__ has no Args entry for {spec.name}"
    assert documented[spec.name] == _rendered(_default(spec))


@pytest.mark.parametrize("spec", _own_fields(), ids=lambda spec: spec.name)
def test_every_feed_config_field_has_help(spec: dataclasses.Field) -> None:
    assert spec.metadata.get("help", "").strip(), f"{spec.name} has no metadata help"


def test_args_section_documents_no_field_feed_config_lacks() -> None:
    assert set(_documented_defaults()) <= {spec.name for spec in _own_fields()}


def test_max_grad_norm_note_matches_the_inherited_default() -> None:
    # The docstring tells recipes that clipping is on by default; that is only true while the default is 1.0.
    assert FeedConfig.__dataclass_fields__["max_grad_norm"].default == 1.0
    assert "`max_grad_norm` is inherited from TrainingArguments, 1.0" in FeedConfig.__doc__
