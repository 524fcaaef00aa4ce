"""Check a value against a dataclass field's declared type, converting it the way the command line would.

One rule for every source of values (YAML/JSON files, the Python API): a value must already have the field's
type, or be text that the command line would accept for it (`"3"` for an int, `"1e-3"` for a float, `"yes"`
for a bool: YAML reads `1e-3` as text). A single value where a list is declared becomes a one-element list.
Nothing else is guessed: `2.7` is not a whole number, `true` is not a number, a list is not a number.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import numbers
import os
import types
import typing
from argparse import ArgumentTypeError
from collections.abc import Mapping
from typing import Any, Literal, Union

from transformers.hf_argparser import string_to_bool

__all__ = ["check_field_value", "field_specs"]

_NONE_TYPE = type(None)
_SCALAR_TYPES = (bool, int, float, str)


class _Mismatch(Exception):
    """The value does not fit the annotation (turned into one ValueError by check_field_value)."""


@functools.cache
def field_specs(dataclass_type: type) -> dict[str, tuple[Any, Any]]:
    """`{field name: (resolved annotation, default)}` for the fields the dataclass's __init__ takes."""
    hints = typing.get_type_hints(dataclass_type)
    specs = {}
    for spec in dataclasses.fields(dataclass_type):
        if spec.init:
            specs[spec.name] = (hints[spec.name], spec.default)  # MISSING for required and factory fields
    return specs


def check_field_value(
    name: str, annotation: Any, value: Any, default: Any = dataclasses.MISSING, where: str = ""
) -> Any:
    """`value` as the field's type, or a ValueError naming `where` (a file), the field, the value and what fits."""
    if value is None and (default is None or _allows_none(annotation)):
        return None
    try:
        return _coerce(annotation, value, lenient=True)
    except _Mismatch:
        raise ValueError(
            f"{where}{name} must be {_describe(annotation)}, got {_show(value)}{_hint(annotation, value)}"
        ) from None


def _coerce(annotation: Any, value: Any, lenient: bool) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return _coerce_union(typing.get_args(annotation), value)
    if origin is Literal:
        if any(_same(value, option) for option in typing.get_args(annotation)):
            return value
        raise _Mismatch
    if annotation is list or origin is list:
        return _coerce_list(annotation, value, lenient)
    if annotation is dict or origin is dict:
        return _coerce_dict(annotation, value)
    if annotation in _SCALAR_TYPES:
        return _coerce_scalar(annotation, value, lenient)
    if _is_enum(annotation):
        if isinstance(value, annotation) or any(_same(value, member.value) for member in annotation):
            return value
        raise _Mismatch
    return value  # Any, or a class of its own (accelerate's configs): that class checks it


def _coerce_union(members: tuple, value: Any) -> Any:
    if value is None and _NONE_TYPE in members:
        return None
    members = _command_line_members(members)
    # A value that already has one member's type keeps it; only then is text converted or a scalar listed.
    for lenient in (False, True):
        for member in members:
            try:
                return _coerce(member, value, lenient)
            except _Mismatch:
                continue
    raise _Mismatch


def _command_line_members(members: tuple) -> list:
    """`SomeEnum | str` means the enum (as HfArgumentParser reads it): its values are the allowed ones."""
    members = [member for member in members if member is not _NONE_TYPE]
    if str in members and any(_is_enum(member) for member in members):
        members.remove(str)
    return members


def _coerce_list(annotation: Any, value: Any, lenient: bool) -> list:
    (item_type,) = typing.get_args(annotation) or (Any,)
    if isinstance(value, list | tuple):
        return [_coerce(item_type, item, lenient=True) for item in value]
    if lenient and not isinstance(value, Mapping):
        return [_coerce(item_type, value, lenient=True)]  # `feed_beta: 500`, `teachers: runs/t0`
    raise _Mismatch


def _coerce_dict(annotation: Any, value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise _Mismatch
    key_type, value_type = typing.get_args(annotation) or (Any, Any)
    return {_coerce(key_type, key, False): _coerce(value_type, item, True) for key, item in value.items()}


def _coerce_scalar(annotation: type, value: Any, lenient: bool) -> Any:
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is str:
        if isinstance(value, str | os.PathLike):
            return os.fspath(value)
        raise _Mismatch  # a number or a date where text is expected: the user must quote it
    elif isinstance(value, bool):
        raise _Mismatch  # bool is an int to Python, never to a user
    elif isinstance(value, numbers.Integral if annotation is int else numbers.Real):
        return annotation(value)
    if lenient and isinstance(value, str):
        try:  # the text means what it would mean on the command line
            return string_to_bool(value) if annotation is bool else annotation(value)
        except (ValueError, ArgumentTypeError) as error:
            raise _Mismatch from error
    raise _Mismatch


def _same(value: Any, option: Any) -> bool:
    """Equal and of one type (`True == 1` to Python); works for unhashable values such as YAML lists."""
    return type(value) is type(option) and value == option


def _is_enum(annotation: Any) -> bool:
    # `list[X]` passes isinstance(..., type) on Python 3.10, and issubclass then raises: rule generics out first.
    return typing.get_origin(annotation) is None and isinstance(annotation, type) and issubclass(annotation, enum.Enum)


def _allows_none(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType) and _NONE_TYPE in typing.get_args(annotation)


_SINGULAR = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
_PLURAL = {bool: "true/false values", int: "whole numbers", float: "numbers", str: "strings"}


def _describe(annotation: Any, plural: bool = False) -> str:
    """What fits `annotation`, in words: 'a number or a list of numbers', "'mean' or 'sum'"."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = _command_line_members(typing.get_args(annotation))
        words = [_describe(member, plural) for member in members]
        return _or([*words, "null"] if _allows_none(annotation) else words)
    if origin is Literal:
        return _choices(typing.get_args(annotation), plural)
    if _is_enum(annotation):
        return _choices([member.value for member in annotation], plural)
    if annotation is list or origin is list:
        (item_type,) = typing.get_args(annotation) or (Any,)
        return f"{_describe(item_type)} or a list of {_describe(item_type, plural=True)}"
    if annotation is dict or origin is dict:
        return "mappings (key: value)" if plural else "a mapping (key: value)"
    if annotation in _SINGULAR:
        return (_PLURAL if plural else _SINGULAR)[annotation]
    return "values" if plural else "a value"


def _choices(options: Any, plural: bool) -> str:
    listed = _or([repr(option) for option in options])
    return f"values from {listed}" if plural else listed


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _hint(annotation: Any, value: Any) -> str:
    if isinstance(value, bool) and _wants_words(annotation):
        return " (YAML reads an unquoted yes/no/on/off/true/false as a boolean: quote the word)"
    if isinstance(value, numbers.Number | dt.date) and _wants_words(annotation):
        return " (YAML reads it as a number or date: quote it if it is meant as text)"
    return ""


def _wants_words(annotation: Any) -> bool:
    """Whether the field takes text or named choices only (where an unquoted YAML scalar is a likely slip)."""
    members = typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else ()
    members = _command_line_members(members) if members else [annotation]
    if len(members) != 1:
        return False
    (member,) = members
    return member is str or _is_enum(member) or typing.get_origin(member) is Literal
