"""Reading the evaluation data files: YAML from a package's ``data/`` folder, its shape checked as it
loads, so a mistyped file fails at import with its place named, not halfway through a generated set."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml


class DataFileError(ValueError):
    """A data file does not have the shape its loader expects."""


def load(package: str, name: str) -> dict[str, Any]:
    """The top-level mapping of ``data/<name>`` in ``package``."""
    text = resources.files(package).joinpath("data", name).read_text(encoding="utf-8")
    return mapping(yaml.safe_load(text), name)


def mapping(value: object, where: str) -> dict[str, Any]:
    """``value`` as a mapping with string keys."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise DataFileError(f"{where}: expected a mapping with string keys")
    return value


def text(value: object, where: str) -> str:
    """``value`` as a string."""
    if not isinstance(value, str):
        raise DataFileError(f"{where}: expected a string, got {value!r}")
    return value


def texts(value: object, where: str) -> tuple[str, ...]:
    """``value`` as a non-empty list of strings, in file order."""
    if not isinstance(value, list) or not value:
        raise DataFileError(f"{where}: expected a non-empty list")
    return tuple(text(v, f"{where}[{i}]") for i, v in enumerate(value))


def scalars(value: object, where: str) -> tuple[str | int | float, ...]:
    """``value`` as a non-empty list of strings and numbers, in file order."""
    if not isinstance(value, list) or not value:
        raise DataFileError(f"{where}: expected a non-empty list")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise DataFileError(f"{where}[{i}]: expected a string or a number, got {v!r}")
    return tuple(value)


def per_language(value: object, languages: tuple[str, ...], where: str) -> dict[str, tuple[str, ...]]:
    """``value`` as string lists keyed by exactly ``languages``."""
    table = mapping(value, where)
    if set(table) != set(languages):
        raise DataFileError(f"{where}: expected exactly the languages {', '.join(languages)}")
    return {lang: texts(table[lang], f"{where}.{lang}") for lang in languages}
