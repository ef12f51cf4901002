"""Configuration files in YAML: read keeping every value's line, validate into a pydantic model and report
every problem at once with its file, line and YAML path. Secrets are given by reference only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError

YamlPath = tuple[str | int, ...]
"""Where a value is in a document: mapping keys and sequence indexes from the top."""

Model = TypeVar("Model", bound=BaseModel)

Check = Callable[[Model], Iterable[tuple[YamlPath, str]]]
"""A check beyond the model's own: for a validated model, each problem with the path it is about."""

_SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$")


def _check_secret_ref(value: str) -> str:
    if not _SECRET_REF.match(value):
        raise ValueError("secrets are given by reference only: use 'env:NAME' or 'file:PATH', not a literal value")
    return value


SecretRef = Annotated[str, AfterValidator(_check_secret_ref)]
"""A secret given by reference (``env:NAME`` or ``file:PATH``); a literal value fails validation."""


class SecretError(Exception):
    """A secret reference could not be resolved."""


def resolve_secret(ref: str, environ: Mapping[str, str] | None = None) -> str:
    """The value behind ``env:NAME`` or ``file:PATH``; raises SecretError saying which reference failed."""
    env = os.environ if environ is None else environ
    if ref.startswith("env:"):
        name = ref[4:]
        if name not in env:
            raise SecretError(f"secret {ref}: environment variable {name} is not set")
        return env[name]
    if ref.startswith("file:"):
        path = Path(ref[5:])
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise SecretError(f"secret {ref}: cannot read file ({exc.strerror})") from exc
    raise SecretError(f"secret reference {ref!r} is neither env:NAME nor file:PATH")


class ConfigError(Exception):
    """A configuration is invalid: ``source`` names the file, ``errors`` holds one line per problem."""

    # The serve, jobs and drift files have always printed their problems on one line; their
    # subclasses keep that so the commands' output only gains line numbers.
    one_line: ClassVar[bool] = False

    def __init__(self, source: str, errors: Iterable[str]) -> None:
        self.source = source
        self.errors = list(errors)
        if self.one_line:
            message = f"{source}: " + "; ".join(self.errors)
        else:
            message = f"{source}: {len(self.errors)} error(s)\n" + "\n".join(f"  {e}" for e in self.errors)
        super().__init__(message)


def yaml_path_text(path: YamlPath) -> str:
    """``a.b[2].c`` for a path; ``<top>`` for the document itself."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<top>"


@dataclass(frozen=True)
class Document:
    """A loaded YAML document and the line of every path in it (none when only the data is known)."""

    source: str
    data: Any
    lines: Mapping[YamlPath, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, source: str, error: type[ConfigError] = ConfigError) -> Document:
        """Load ``text``; invalid YAML raises ``error`` with the line of the problem."""
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise error(source, [f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc})"]) from None
        finally:
            loader.dispose()
        return cls(source, data, _line_index(node) if node is not None else {})

    @classmethod
    def read(cls, path: str | Path, error: type[ConfigError] = ConfigError) -> Document:
        """Read and load a file; an unreadable file or invalid YAML raises ``error``."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise error(str(p), [f"cannot read file: {reason}"]) from None
        return cls.parse(text, str(p), error)

    def where(self, path: YamlPath) -> str:
        """``line N: a.b[2].c`` for a path, with the line of its closest ancestor in the file."""
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe)
        text = yaml_path_text(path)
        return f"line {line}: {text}" if line else text

    def problems(self, exc: ValidationError, prefix: YamlPath = ()) -> list[str]:
        """One line per validation error of the value at ``prefix``: where it is, then what is wrong."""
        found = []
        for err in exc.errors():
            # Validator names (``function-after[...]``) are pydantic's, not part of the file.
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = "unknown key (not part of this section)" if err["type"] == "extra_forbidden" else err["msg"]
            found.append(f"{self.where((*prefix, *loc))}: {msg}")
        return found


def _line_index(root: yaml.Node) -> dict[YamlPath, int]:
    """Map every YAML path under ``root`` to its 1-based line number."""
    index: dict[YamlPath, int] = {}

    def walk(node: yaml.Node, path: YamlPath, above: frozenset[int]) -> None:
        if id(node) in above:  # an alias of one of its own ancestors
            return
        above = above | {id(node)}
        # A mapping value keeps its key's line: a block value starts on the line below its key.
        index.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
                index[(*path, key)] = k.start_mark.line + 1
                walk(v, (*path, key), above)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i), above)

    walk(root, (), frozenset())
    return index


def validate_document(
    document: Document,
    model: type[Model],
    *,
    error: type[ConfigError] = ConfigError,
    checks: Iterable[Check[Model]] = (),
    allow_empty: bool = True,
    not_a_mapping: str = "the configuration must be a mapping",
) -> Model:
    """The document validated into ``model``; raises ``error`` listing every problem at once.

    An empty document is an empty mapping when ``allow_empty``. ``checks`` run on the validated
    model; their problems are reported together.
    """
    data = document.data
    if data is None and allow_empty:
        data = {}
    if not isinstance(data, dict):
        raise error(document.source, [f"{document.where(())}: {not_a_mapping}"])
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        raise error(document.source, document.problems(exc)) from None
    problems = [f"{document.where(path)}: {problem}" for check in checks for path, problem in check(value)]
    if problems:
        raise error(document.source, problems)
    return value


def load_yaml_model(
    path: str | Path,
    model: type[Model],
    *,
    error: type[ConfigError] = ConfigError,
    checks: Iterable[Check[Model]] = (),
    allow_empty: bool = True,
    not_a_mapping: str = "the configuration must be a mapping",
) -> Model:
    """Read a YAML file and validate it into ``model``; raises ``error`` listing every problem at once."""
    return validate_document(Document.read(path, error), model, error=error, checks=checks,
                             allow_empty=allow_empty, not_a_mapping=not_a_mapping)
