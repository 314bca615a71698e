"""Dagster config classes generated from a stage's settings dataclass: one source per knob.

A stage package keeps its knobs in a frozen dataclass whose docstring documents each field in
an ``Attributes:`` section. The launchpad needs a ``dagster.Config`` with the same fields,
defaults and descriptions; building it from the dataclass means a new knob appears in the UI
the moment it is added to the stage, and the asset turns the config back into settings with
:func:`settings_from_config`, never copying fields by hand.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any, TypeVar

from dagster import Config
from pydantic import Field, create_model

SettingsT = TypeVar("SettingsT")
_ATTRIBUTE = re.compile(r"^(\w+):\s*(.*)$")


def documented_fields(settings_type: type) -> dict[str, str]:
    """Field name -> description, from the ``Attributes:`` section of the class docstring."""
    doc = inspect.cleandoc(settings_type.__doc__ or "")
    _, found, section = doc.partition("Attributes:")
    descriptions: dict[str, list[str]] = {}
    current = None
    for line in section.splitlines() if found else []:
        indent = len(line) - len(line.lstrip())
        match = _ATTRIBUTE.match(line.strip())
        if indent == 4 and match:
            current = match.group(1)
            descriptions[current] = [match.group(2)]
        elif current and line.strip():
            descriptions[current].append(line.strip())
    return {name: " ".join(words) for name, words in descriptions.items()}


def config_class(
    name: str, settings_type: type, doc: str, **extra: tuple[Any, Any]
) -> type[Config]:
    """A ``Config`` subclass with every field of ``settings_type`` (its type, default and
    documented description) plus ``extra`` fields given as ``name=(type, Field(...))``."""
    hints = typing.get_type_hints(settings_type)
    described = documented_fields(settings_type)
    fields: dict[str, tuple[Any, Any]] = {}
    for field in dataclasses.fields(settings_type):
        if field.name not in described:
            raise ValueError(f"{settings_type.__name__}.{field.name} is not documented")
        fields[field.name] = (
            hints[field.name],
            Field(default=field.default, description=described[field.name]),
        )
    model = create_model(name, __base__=Config, **fields, **extra)
    model.__doc__ = doc
    return model


def settings_from_config(settings_type: type[SettingsT], config: Config) -> SettingsT:
    """The settings object the config describes (its extra fields left out)."""
    names = {field.name for field in dataclasses.fields(settings_type)}
    return settings_type(**config.model_dump(include=names))
