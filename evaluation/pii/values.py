"""Valid planted values and telemetry look-alikes for the PII corpus, drawn from a seeded generator.

Every planted value is valid where a checksum exists (IBAN, cards, national ids, VAT), so a
recognizer cannot pass by rejecting it. The draws from ``rng`` are part of the corpus: changing
their order changes every corpus generated after it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import string
import unicodedata
from collections.abc import Callable

import phonenumbers

from evaluation.datafiles import DataFileError
from evaluation.pii.vocabulary import ERRORS, GPUS, LOCALES, MODELS, NAMES, NAMESPACES, POD_BASES, VERSIONS
from processors.recognizers.checksums import (
    CF_ODD_VALUES,
    IBAN_LENGTHS,
    icao_check_digit,
    iso7064_mod11_10,
    luhn_valid,
    mod97,
)


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


_HEX = "0123456789abcdef"
_ALNUM = string.ascii_letters + string.digits
_POD = "bcdfghjklmnpqrstvwxz2456789"


def neg_model(rng: random.Random) -> str:
    """A model name."""
    return rng.choice(MODELS)


def neg_pod(rng: random.Random) -> str:
    """A Kubernetes pod name of a Deployment."""
    base = rng.choice(POD_BASES)
    return f"{base}-{_rand(rng, _POD, 9)}-{_rand(rng, _POD, 5)}"


def neg_node(rng: random.Random) -> str:
    """A GPU node name."""
    return rng.choice(
        (
            f"gpu-node-a100-{rng.randint(1, 64):02d}",
            f"aks-gpupool-{rng.randint(10**7, 10**8 - 1)}-vmss{rng.randint(0, 999):06d}",
            f"gke-prod-gpu-pool-{_rand(rng, _HEX, 8)}-{_rand(rng, _POD, 4)}",
            f"ip-10-{rng.randint(0, 255)}-{rng.randint(0, 255)}-{rng.randint(1, 254)}.eu-central-1.compute.internal",
            f"worker-{rng.randint(1, 32)}.{rng.choice(NAMESPACES)}.svc",
        )
    )


def neg_hex(rng: random.Random) -> str:
    """A trace id, span id, git sha or digest."""
    return rng.choice(
        (_rand(rng, _HEX, 32), _rand(rng, _HEX, 16), _rand(rng, _HEX, 40), "sha256:" + _rand(rng, _HEX, 64))
    )


def neg_uuid(rng: random.Random) -> str:
    """A UUID (v4 layout)."""
    h = _rand(rng, _HEX, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:]}"


def neg_float(rng: random.Random) -> str:
    """A float as telemetry writes it."""
    return rng.choice(
        (
            f"{rng.random():.4f}",
            f"{rng.uniform(0, 100):.2f}",
            f"{rng.uniform(1e-6, 1e-3):.2e}",
            f"{rng.uniform(0, 2):.6f}",
        )
    )


def neg_timestamp(rng: random.Random) -> str:
    """A timestamp in one of the usual telemetry formats."""
    s = 1_760_000_000 + rng.randint(0, 30_000_000)
    t = dt.datetime.fromtimestamp(s, tz=dt.UTC)
    return rng.choice(
        (
            t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{rng.randint(0, 999):03d}Z",
            t.strftime("%Y-%m-%d %H:%M:%S"),
            str(s),
            str(s * 1000 + rng.randint(0, 999)),
            t.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        )
    )


NEGATIVES: dict[str, Callable[[random.Random], str]] = {
    "model": neg_model,
    "pod": neg_pod,
    "node": neg_node,
    "hex": neg_hex,
    "uuid": neg_uuid,
    "float": neg_float,
    "gpu": lambda rng: rng.choice(GPUS),
    "error": lambda rng: rng.choice(ERRORS),
    "version": lambda rng: rng.choice(VERSIONS),
    "ts": neg_timestamp,
}


# --- planted values --------------------------------------------------------------------------
def _ascii(text: str) -> str:
    """The name as people write it in an e-mail address (no accents, spaces or apostrophes)."""
    text = text.replace("ß", "ss").replace("ł", "l").replace("Ł", "L")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace(" ", "").replace("'", "")


def person(rng: random.Random, lang: str) -> tuple[str, str, str]:
    """(full name, given name, surname); about a third of given names and of surnames lie outside
    the gazetteers, so roughly one name in ten is known to neither."""
    names = NAMES[lang]
    given = rng.choice(names.given_rare if rng.random() < 0.35 else names.given)
    surnames = names.surnames
    surname = rng.choice(names.surnames_rare if rng.random() < 0.3 else surnames)
    if lang == "pl" and given.endswith("a") and surname.endswith("ski"):
        surname = surname[:-1] + "a"  # Kowalska for a woman
    if lang == "es" and rng.random() < 0.4:
        surname = f"{surname} {rng.choice(surnames)}"
    return f"{given} {surname}", given, surname


def email(rng: random.Random, lang: str, given: str = "", surname: str = "") -> str:
    """An address, usually built from a name."""
    if not given:
        _, given, surname = person(rng, lang)
    g, s = _ascii(given).lower(), _ascii(surname).lower()
    local = rng.choice((f"{g}.{s}", f"{g[0]}.{s}", f"{g}{rng.randint(1, 99)}", f"{s}.{g}", f"{g}_{s}"))
    return f"{local}@{rng.choice(LOCALES[lang].mail_domains)}"


def phone(rng: random.Random, lang: str) -> tuple[str, bool]:
    """A valid number of the language's country; (text, international)."""
    region = LOCALES[lang].phone_region
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None
    nsn = str(example.national_number)
    for _ in range(200):
        candidate = nsn[:3] + "".join(rng.choice(string.digits) for _ in nsn[3:])
        parsed = phonenumbers.parse("+" + str(example.country_code) + candidate, None)
        if phonenumbers.is_valid_number(parsed):
            break
    fmt = rng.random()
    if fmt < 0.4:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL), True
    if fmt < 0.6:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), True
    if fmt < 0.7:
        text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return "00" + text[1:], True
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL), False


def iban(rng: random.Random, lang: str) -> str:
    """A valid IBAN of the language's country, compact or grouped by four."""
    country = LOCALES[lang].iban_country
    n = IBAN_LENGTHS[country] - 4
    if country == "NL":
        bban = _rand(rng, string.ascii_uppercase, 4) + _rand(rng, string.digits, n - 4)
    elif country == "IT":
        bban = rng.choice(string.ascii_uppercase) + _rand(rng, string.digits, 10) + _rand(rng, string.digits, n - 11)
    elif country == "IE":
        bban = _rand(rng, string.ascii_uppercase, 4) + _rand(rng, string.digits, n - 4)
    else:
        bban = _rand(rng, string.digits, n)
    check = 98 - mod97(bban + country + "00")
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def card(rng: random.Random) -> str:
    """A Luhn-valid Visa, Mastercard or Amex number, grouped or compact."""
    prefix, length = rng.choice((("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15)))
    body = prefix + _rand(rng, string.digits, length - len(prefix) - 1)
    digits = next(body + d for d in string.digits if luhn_valid(body + d))
    if rng.random() < 0.5:
        return digits
    if length == 15:
        return f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    sep = rng.choice((" ", "-"))
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


def de_tax_id(rng: random.Random) -> str:
    """A valid Steuer-ID (one digit twice), compact or grouped 2-3-3-3."""
    digits = rng.sample(string.digits, 9)
    while digits[0] == "0":
        rng.shuffle(digits)
    head = [*digits, rng.choice(digits[1:])]
    rest = head[1:]
    rng.shuffle(rest)
    head = [head[0], *rest]
    body = "".join(head)
    text = body + str(iso7064_mod11_10(body))
    return text if rng.random() < 0.5 else f"{text[:2]} {text[2:5]} {text[5:8]} {text[8:]}"


def de_id_card(rng: random.Random) -> str:
    """A Personalausweis serial with its check digit."""
    alphabet = "CFGHJKLMNPRTVWXYZ"
    serial = rng.choice(alphabet) + _rand(rng, alphabet + "0123456789", 8)
    return serial + str(icao_check_digit(serial))


def fr_nir(rng: random.Random) -> str:
    """A NIR with a valid key, compact or spaced."""
    sex, year, month, dept = rng.choice("12"), rng.randint(40, 99), rng.randint(1, 12), rng.randint(1, 95)
    body = f"{sex}{year:02d}{month:02d}{dept:02d}{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
    key = 97 - int(body) % 97
    text = f"{body}{key:02d}"
    if rng.random() < 0.5:
        return text
    return f"{text[0]} {text[1:3]} {text[3:5]} {text[5:7]} {text[7:10]} {text[10:13]} {text[13:]}"


def it_fiscal_code(rng: random.Random) -> str:
    """A codice fiscale with a valid check letter."""
    letters = string.ascii_uppercase
    body = (
        _rand(rng, letters, 6)
        + f"{rng.randint(40, 99):02d}"
        + rng.choice("ABCDEHLMPRST")
        + f"{rng.randint(1, 71):02d}"
        + rng.choice(letters)
        + f"{rng.randint(1, 999):03d}"
    )
    total = sum(
        CF_ODD_VALUES[c] if i % 2 == 0 else (int(c) if c.isdigit() else ord(c) - 65) for i, c in enumerate(body)
    )
    return body + chr(65 + total % 26)


def es_nif(rng: random.Random) -> str:
    """A DNI or NIE with its control letter."""
    letters = "TRWAGMYFPDXBNJZSQVHLCKE"
    if rng.random() < 0.7:
        n = rng.randint(10_000_000, 99_999_999)
        return f"{n}{letters[n % 23]}" if rng.random() < 0.7 else f"{n}-{letters[n % 23]}"
    prefix = rng.choice("XYZ")
    n = rng.randint(0, 9_999_999)
    return f"{prefix}{n:07d}{letters[int(str('XYZ'.index(prefix)) + f'{n:07d}') % 23]}"


def nl_bsn(rng: random.Random) -> str:
    """A BSN passing the eleven-test."""
    while True:
        d = [rng.randint(0, 9) for _ in range(8)]
        total = sum(x * w for x, w in zip(d, range(9, 1, -1), strict=True))
        last = total % 11
        if last < 10 and d[0] != 0:
            return "".join(map(str, d)) + str(last)


def pl_pesel(rng: random.Random) -> str:
    """A PESEL with a real birth date and its check digit."""
    year = rng.randint(1940, 2010)
    month = rng.randint(1, 12) + (20 if year >= 2000 else 0)
    body = f"{year % 100:02d}{month:02d}{rng.randint(1, 28):02d}{rng.randint(0, 9999):04d}"
    weights = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
    check = (10 - sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 10) % 10
    return body + str(check)


def vat(rng: random.Random, lang: str) -> str:
    """A VAT id with valid check digits for DE, FR, IT, NL, PL (format only for ES)."""
    country = LOCALES[lang].vat_country
    if country == "DE":
        body = str(rng.randint(10_000_000, 99_999_999))
        return f"DE{body}{iso7064_mod11_10(body)}"
    if country == "FR":
        siren = rng.randint(100_000_000, 999_999_999)
        return f"FR{(12 + 3 * (siren % 97)) % 97:02d}{siren}"
    if country == "IT":
        body = _rand(rng, string.digits, 10)
        return "IT" + next(body + d for d in string.digits if luhn_valid(body + d))
    if country == "NL":
        return f"NL{nl_bsn(rng)}B{rng.randint(1, 99):02d}"
    if country == "PL":
        while True:
            body = _rand(rng, string.digits, 9)
            check = sum(int(c) * w for c, w in zip(body, (6, 5, 7, 2, 3, 4, 5, 6, 7), strict=True)) % 11
            if check < 10:
                return f"PL{body}{check}"
    return f"ES{rng.choice('ABCDEFGHJ')}{rng.randint(1_000_000, 9_999_999)}{rng.choice(string.digits)}"


def api_key(rng: random.Random) -> str:
    """A key in one provider's documented format."""
    kind = rng.randrange(8)
    if kind == 0:
        return "sk-proj-" + _rand(rng, _ALNUM + "_-", 48)
    if kind == 1:
        return "sk-ant-api03-" + _rand(rng, _ALNUM + "_-", 93) + "AA"
    if kind == 2:
        return "AKIA" + _rand(rng, string.ascii_uppercase + string.digits, 16)
    if kind == 3:
        return "ghp_" + _rand(rng, _ALNUM, 36)
    if kind == 4:
        return "hf_" + _rand(rng, _ALNUM, 34)
    if kind == 5:
        return "sk_live_" + _rand(rng, _ALNUM, 24)
    if kind == 6:
        return "AIza" + _rand(rng, _ALNUM + "_-", 35)
    return f"xoxb-{rng.randint(10**10, 10**11)}-{rng.randint(10**10, 10**11)}-" + _rand(rng, _ALNUM, 24)


def jwt(rng: random.Random) -> str:
    """A signed JWT (HS256 or RS256) with a plausible payload."""

    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    header = {"alg": rng.choice(("HS256", "RS256")), "typ": "JWT"}
    payload = {"sub": str(rng.randint(10**6, 10**9)), "iat": 1_760_000_000 + rng.randint(0, 10**7), "scope": "chat"}
    sig = _rand(rng, _ALNUM + "-_", rng.choice((43, 86)))
    return f"{b64(header)}.{b64(payload)}.{sig}"


def ip(rng: random.Random) -> str:
    """A public or private IPv4 or a global IPv6 address."""
    r = rng.random()
    if r < 0.45:
        first = rng.choice((31, 46, 77, 85, 91, 145, 176, 185, 193, 212))
        return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if r < 0.7:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    groups = [rng.choice(("2001", "2a02", "2a01", "2003"))] + [f"{rng.randint(0, 0xFFFF):x}" for _ in range(7)]
    text = ":".join(groups)
    return text if rng.random() < 0.5 else ":".join(groups[:3]) + "::" + groups[-1]


def bearer(rng: random.Random) -> str:
    """An opaque OAuth access token."""
    return _rand(rng, _ALNUM + "-._~", rng.randint(32, 64))


def session_id(rng: random.Random) -> str:
    """A session cookie value."""
    return _rand(rng, _HEX.upper() if rng.random() < 0.5 else _ALNUM, 32)


def private_key(rng: random.Random) -> str:
    """A PEM private key block (random body)."""
    kind = rng.choice(("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"))
    lines = [_rand(rng, _ALNUM + "+/", 64) for _ in range(rng.randint(3, 8))]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


# The generators locales.yaml may name for a national id.
NATIONAL_ID_GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "de_tax_id": de_tax_id,
    "de_id_card": de_id_card,
    "fr_nir": fr_nir,
    "it_fiscal_code": it_fiscal_code,
    "es_nif": es_nif,
    "nl_bsn": nl_bsn,
    "pl_pesel": pl_pesel,
}
_unknown = {i.generator for locale in LOCALES.values() for i in locale.national_ids} - set(NATIONAL_ID_GENERATORS)
if _unknown:
    raise DataFileError(f"locales.yaml names unknown national id generators: {', '.join(sorted(_unknown))}")
