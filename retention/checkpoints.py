"""Signed ledger checkpoints: (sequence number, hash) of the ledger head, signed with Ed25519 and kept as
files outside the store, so a ledger rewritten or cut short inside the store no longer matches them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sovtel.config import resolve_secret

_NAME = re.compile(r"^(?P<ledger>[A-Za-z_][A-Za-z0-9_]*)-(?P<seq>\d{12})\.json$")


class CheckpointError(Exception):
    """A key or checkpoint file cannot be used (unreadable, malformed, wrong key type)."""


def canonical_json(value: object) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the one serialisation every hash and signature covers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key (SHA-256 of its raw bytes, 16 hex digits)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _private_from_text(text: str) -> Ed25519PrivateKey:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError("the signing key is not an Ed25519 key")
        return key
    try:
        raw = bytes.fromhex(text) if re.fullmatch(r"[0-9a-fA-F]{64}", text) else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise CheckpointError("the signing key must be an Ed25519 PEM or a 32-byte seed (hex or base64)")
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_signing_key(ref: str, resolve: Callable[[str], str] = resolve_secret) -> Ed25519PrivateKey:
    """The Ed25519 private key behind a secret reference (``env:NAME`` or ``file:PATH``)."""
    try:
        text = resolve(ref)
    except Exception as exc:
        raise CheckpointError(f"signing key {ref}: {exc}") from None
    try:
        return _private_from_text(text)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"signing key {ref}: not an Ed25519 key ({type(exc).__name__})") from None


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise CheckpointError(f"public key {path}: cannot read ({exc.strerror})") from None
    except ValueError:
        raise CheckpointError(f"public key {path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"public key {path}: not an Ed25519 key")
    return key


def generate_key(directory: Path, name: str = "ledger-signing") -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``name.pem`` (private, mode 0600, never overwritten) and ``name.pub.pem``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub.pem"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@dataclass(frozen=True)
class Checkpoint:
    """The ledger head at one moment, signed: ``seq`` and ``hash`` of the entry, who signed, when."""

    ledger: str
    seq: int
    hash: str
    entry_timestamp: str
    created: str
    key_id: str
    signature: str = ""

    def signed_bytes(self) -> bytes:
        """What the signature covers: every field but the signature, as canonical JSON."""
        fields = {k: v for k, v in asdict(self).items() if k != "signature"}
        return canonical_json(fields).encode()

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        """Whether the signature is valid under ``public_key``."""
        try:
            public_key.verify(base64.b64decode(self.signature), self.signed_bytes())
        except (InvalidSignature, ValueError, binascii.Error):
            return False
        return True

    @property
    def filename(self) -> str:
        """``<ledger>-<seq, 12 digits>.json``: sorts in ledger order."""
        return f"{self.ledger}-{self.seq:012d}.json"


def sign_checkpoint(ledger: str, seq: int, entry_hash: str, entry_timestamp: str, *,
                    key: Ed25519PrivateKey, now: dt.datetime | None = None) -> Checkpoint:
    """A checkpoint of ``(seq, entry_hash)`` signed with ``key``."""
    created = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    unsigned = Checkpoint(ledger, seq, entry_hash, entry_timestamp, created, key_id(key.public_key()))
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode()
    return Checkpoint(ledger, seq, entry_hash, entry_timestamp, created, unsigned.key_id, signature)


def write_checkpoint(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write a checkpoint file atomically; an existing file for the same seq is kept, never replaced."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / checkpoint.filename
    if path.exists():
        return path
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(asdict(checkpoint), indent=2, sort_keys=True) + "\n")
        # link() fails if another writer created the file meanwhile: the first checkpoint stays.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def read_checkpoints(directory: Path, ledger: str) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints of ``ledger`` in ``directory`` by seq, and a problem per unreadable file."""
    found: list[Checkpoint] = []
    problems: list[str] = []
    if not directory.is_dir():
        return found, [f"checkpoint directory {directory} does not exist"]
    for path in sorted(directory.iterdir()):
        m = _NAME.match(path.name)
        if m is None or m.group("ledger") != ledger:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            cp = Checkpoint(**data)
        except (OSError, ValueError, TypeError):
            problems.append(f"checkpoint {path.name} is unreadable or malformed")
            continue
        if cp.seq != int(m.group("seq")) or cp.ledger != ledger:
            problems.append(f"checkpoint {path.name} does not match its file name (seq {cp.seq}, ledger {cp.ledger})")
            continue
        found.append(cp)
    found.sort(key=lambda c: c.seq)
    return found, problems
