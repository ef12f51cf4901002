"""The key ring: HMAC keys for pseudonymisation, listed by id and secret reference, one active per kind.

The file holds references (``env:NAME`` / ``file:PATH``), never key material. Two kinds: ``node``
keys (collector side) and ``pepper`` keys (store side). Rotation adds an entry and makes it
active; old entries stay, so data pseudonymised under them can still be found for erasure.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sovtel.config import SecretRef, resolve_secret

KeyKind = Literal["node", "pepper"]
KINDS: tuple[KeyKind, ...] = ("node", "pepper")
ID_PREFIX: dict[KeyKind, str] = {"node": "n", "pepper": "p"}
_KEY_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MIN_KEY_BYTES = 16


class KeyRingError(Exception):
    """The key ring file is missing, malformed, or a key cannot be resolved (the message never
    contains key material)."""


class KeyEntry(BaseModel):
    """One key: where its secret is, and when it was added."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: SecretRef
    created: str = ""


class KeySet(BaseModel):
    """The keys of one kind and which of them is active."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    active: str
    keys: dict[str, KeyEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> KeySet:
        bad = [k for k in self.keys if not _KEY_ID.match(k)]
        if bad:
            raise ValueError(f"key ids must be lower-case letters, digits, '-' or '_' (no ':'): {', '.join(bad)}")
        if self.active not in self.keys:
            raise ValueError(f"active key {self.active!r} is not among the keys ({', '.join(self.keys)})")
        return self


class KeyRing(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: KeySet | None = None
    pepper: KeySet | None = None

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read and validate a key ring file; raises KeyRingError saying what is wrong."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KeyRingError(f"key ring {path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError:
            raise KeyRingError(f"key ring {path}: not valid YAML") from None
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise KeyRingError(f"key ring {path}: {problems}") from None

    def save(self, path: Path) -> None:
        """Write the ring atomically (a reader never sees half a file)."""
        text = "# sovtel key ring: references only (env:NAME or file:PATH), never key material.\n" + yaml.safe_dump(
            self.model_dump(exclude_none=True), sort_keys=False
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".keyring-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def keyset(self, kind: KeyKind) -> KeySet:
        """The keys of one kind; KeyRingError if the ring has none."""
        ks: KeySet | None = getattr(self, kind)
        if ks is None:
            raise KeyRingError(f"the key ring has no {kind} keys")
        return ks

    def active(self, kind: KeyKind) -> str:
        """The id of the active key of a kind."""
        return self.keyset(kind).active

    def key(self, kind: KeyKind, key_id: str, resolve: Callable[[str], str] = resolve_secret) -> bytes:
        """The key material of one key, resolved now; KeyRingError naming the id (not the secret)."""
        entry = self.keyset(kind).keys.get(key_id)
        if entry is None:
            raise KeyRingError(f"no {kind} key with id {key_id!r}")
        try:
            value = resolve(entry.ref)
        except Exception as exc:
            raise KeyRingError(f"{kind} key {key_id}: {exc}") from None
        if value == entry.ref:
            # A resolver that hands back the reference (a test double) would make the path the key.
            raise KeyRingError(f"{kind} key {key_id}: the reference was not resolved to a secret")
        material = value.encode()
        if len(material) < MIN_KEY_BYTES:
            raise KeyRingError(f"{kind} key {key_id} is shorter than {MIN_KEY_BYTES} bytes")
        return material

    def with_key(self, kind: KeyKind, key_id: str, ref: str, activate: bool = True) -> KeyRing:
        """A ring with one more key of a kind (and, by default, that key active)."""
        current: KeySet | None = getattr(self, kind)
        keys = dict(current.keys) if current else {}
        if key_id in keys:
            raise KeyRingError(f"{kind} key id {key_id!r} exists already")
        created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        keys[key_id] = KeyEntry(ref=ref, created=created)
        active = key_id if activate or current is None else current.active
        return self.model_copy(update={kind: KeySet(active=active, keys=keys)})

    def next_id(self, kind: KeyKind) -> str:
        """The next free id of a kind: n1, n2, … (p1, p2, … for peppers)."""
        current: KeySet | None = getattr(self, kind)
        prefix = ID_PREFIX[kind]
        numbers = [int(k[len(prefix) :]) for k in (current.keys if current else ()) if re.fullmatch(rf"{prefix}\d+", k)]
        return f"{prefix}{max(numbers, default=0) + 1}"


def rotate(
    path: Path, kind: KeyKind, ref: str | None = None, key_dir: Path | None = None, activate: bool = True
) -> tuple[str, str]:
    """Add a new key of ``kind`` to the ring at ``path`` (created if missing); returns (id, ref).

    Without ``ref`` a fresh 256-bit key is written to ``key_dir/<id>.key`` (mode 0600, never
    overwritten) and referenced as ``file:``. The processors pick the new active key up on their
    next reload; old keys stay for erasure look-ups.
    """
    ring = KeyRing.load(path) if path.exists() else KeyRing()
    key_id = ring.next_id(kind)
    if ref is None:
        directory = key_dir if key_dir is not None else path.parent / "keys"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_file = (directory / f"{key_id}.key").resolve()
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        ref = f"file:{key_file}"
    ring = ring.with_key(kind, key_id, ref, activate=activate)
    ring.save(path)
    return key_id, ref
