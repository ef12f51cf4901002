"""A labelled, synthetic, multilingual (DE/FR/IT/ES/NL/PL/EN) telemetry corpus for the PII masking
evaluation: prompts, tool arguments, logs and system prompts with planted personal data and
secrets, and telemetry-like negatives (model, pod and GPU names, ids, versions, timestamps).

Every planted value is valid where a checksum exists (IBAN, cards, national ids, VAT), so a
recognizer cannot pass by rejecting it. About a third of the given names and of the surnames are
drawn from lists the PERSON gazetteers do not contain, so the name results measure NER and the
context rules as well.
The generator is deterministic for a seed.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import random
import re
import string
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import phonenumbers

from processors.recognizers.checksums import (
    CF_ODD_VALUES,
    IBAN_LENGTHS,
    icao_check_digit,
    iso7064_mod11_10,
    luhn_valid,
    mod97,
)

LANGUAGES: tuple[str, ...] = ("de", "fr", "it", "es", "nl", "pl", "en")


@dataclass(frozen=True)
class Planted:
    """A value that must not survive masking."""

    entity: str
    value: str


@dataclass(frozen=True)
class Sample:
    """One text as it would sit in a span or log column, with what was planted in it."""

    kind: str  # prompt | tool_args | log | system
    lang: str
    text: str
    planted: tuple[Planted, ...]
    negatives: tuple[str, ...]
    split: str = "dev"  # dev (templates the rules were tuned on) | holdout


# --- names -----------------------------------------------------------------------------------
# (common given names, given names outside the sovtel gazetteer, surnames)
NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "de": (
        ("Lukas", "Anna", "Jonas", "Katharina", "Stefan", "Sabine", "Thomas", "Julia", "Matthias", "Leonie"),
        ("Wiebke", "Gesine", "Hartmut", "Volker", "Detlef", "Annegret", "Ulrike", "Björn", "Mareike", "Gerhard"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
         "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Zimmermann", "Krüger"),
    ),
    "fr": (
        ("Pierre", "Camille", "Julien", "Sophie", "Nicolas", "Claire", "Antoine", "Élodie", "Mathieu", "Inès"),
        ("Gaspard", "Apolline", "Anatole", "Héloïse", "Ysaline", "Aymeric", "Bérénice", "Gwenaël", "Honorine",
         "Corentin"),
        ("Bernard", "Dubois", "Durand", "Leroy", "Moreau", "Lefèvre", "Fournier", "Girard", "Bonnet", "Dupont",
         "Lambert", "Fontaine", "Rousseau", "Vincent", "Muller", "Lefebvre", "Faure", "André", "Mercier", "Blanc"),
    ),
    "it": (
        ("Giulia", "Marco", "Francesca", "Alessandro", "Chiara", "Luca", "Federica", "Matteo", "Sara", "Giorgio"),
        ("Ludovica", "Gianmarco", "Ottavio", "Brunella", "Ersilia", "Gualtiero", "Cosimo", "Ornella",
         "Tiziana", "Oreste"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
         "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti", "Barbieri"),
    ),
    "es": (
        ("Lucía", "Javier", "María", "Alejandro", "Carmen", "Pablo", "Laura", "Diego", "Marta", "Sergio"),
        ("Iker", "Itziar", "Begoña", "Maite", "Eneko", "Amaia", "Unai", "Leire", "Xabier", "Milagros"),
        ("García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Jiménez",
         "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Alonso", "Gutiérrez", "Navarro"),
    ),
    "nl": (
        ("Daan", "Sanne", "Jeroen", "Femke", "Thijs", "Lotte", "Bram", "Anouk", "Pieter", "Marieke"),
        ("Sjoerd", "Fokke", "Geertje", "Wietske", "Hein", "Jelle", "Rianne", "Tjitske", "Auke", "Gerben"),
        ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser", "Smit", "Meijer",
         "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker", "Brouwer"),
    ),
    "pl": (
        ("Katarzyna", "Piotr", "Agnieszka", "Tomasz", "Magdalena", "Krzysztof", "Joanna", "Paweł",
         "Małgorzata", "Michał"),
        ("Bożena", "Wiesław", "Jolanta", "Czesław", "Bogumiła", "Zdzisław", "Genowefa", "Leszek", "Urszula",
         "Bolesław"),
        ("Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski", "Zieliński", "Szymański",
         "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski", "Mazur", "Kwiatkowski", "Krawczyk", "Piotrowski",
         "Grabowski"),
    ),
    "en": (
        ("Oliver", "Emily", "James", "Sarah", "George", "Olivia", "Harry", "Grace", "Jack", "Jessica"),
        ("Barnaby", "Imogen", "Rupert", "Philippa", "Crispin", "Araminta", "Tobias", "Hermione", "Alistair",
         "Clementine"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
         "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke"),
    ),
}  # fmt: skip

# Surnames outside the sovtel surname gazetteer (drawn for about a third of the names).
RARE_SURNAMES: dict[str, tuple[str, ...]] = {
    "de": ("Oberländer", "Kirchhoff", "Wiesenthal", "Brandstätter", "Hagedorn", "Achterberg", "Quandt", "Eichhorn"),
    "fr": ("Delacroix", "Beaulieu", "Kervella", "Marchetti", "Chevallier", "Tessier", "Le Goff", "Lemaire"),
    "it": ("Zanetti", "Cattaneo", "Pellegrino", "Benedetti", "Sorrentino", "Vitale", "Fabbri", "Orlandi"),
    "es": ("Etxeberria", "Arrieta", "Zubizarreta", "Olmedo", "Quintana", "Villanueva", "Echeverría", "Aranda"),
    "nl": ("Hoekstra", "Wijnberg", "Zwart", "Veenstra", "Kuipers", "Terpstra", "van der Wal", "Postma"),
    "pl": ("Przybylski", "Sobczak", "Kaczmarek", "Wróblewski", "Michalak", "Czarnecki", "Sikora", "Baran"),
    "en": ("Featherstone", "Pemberton", "Ashworth", "Winterbottom", "Blackwood", "Fairweather", "Holloway", "Ainsley"),
}  # fmt: skip

MAIL_DOMAINS = {
    "de": ("gmail.com", "web.de", "gmx.de", "t-online.de", "posteo.de", "firma-schulz.de"),
    "fr": ("orange.fr", "free.fr", "laposte.net", "gmail.com", "sfr.fr", "hopital-lyon.fr"),
    "it": ("libero.it", "gmail.com", "virgilio.it", "tiscali.it", "comune.milano.it"),
    "es": ("gmail.com", "telefonica.es", "hotmail.es", "yahoo.es", "ayto-madrid.es"),
    "nl": ("ziggo.nl", "kpnmail.nl", "gmail.com", "xs4all.nl", "gemeente.utrecht.nl"),
    "pl": ("wp.pl", "onet.pl", "interia.pl", "gmail.com", "o2.pl"),
    "en": ("gmail.com", "outlook.com", "example-bank.eu", "yahoo.co.uk", "nhs.net"),
}
PHONE_REGION = {"de": "DE", "fr": "FR", "it": "IT", "es": "ES", "nl": "NL", "pl": "PL", "en": "GB"}
IBAN_COUNTRY = {"de": "DE", "fr": "FR", "it": "IT", "es": "ES", "nl": "NL", "pl": "PL", "en": "IE"}

# --- negatives -------------------------------------------------------------------------------
MODELS = (
    "llama-3.1-8b-instruct", "Llama-3.3-70B-Instruct", "mistral-small-24b-2503", "Mixtral-8x7B-Instruct-v0.1",
    "qwen2.5-72b-instruct", "Qwen2.5-Coder-32B-Instruct", "gemma-2-9b-it", "phi-3-mini-4k-instruct",
    "deepseek-r1-distill-llama-8b", "Meta-Llama-3-8B-Instruct-AWQ", "bge-m3", "e5-large-v2", "gpt-4o-mini",
    "claude-3-5-sonnet-20241022", "mistral-large-2411", "EuroLLM-9B-Instruct",
)  # fmt: skip
GPUS = (
    "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA L40S", "Tesla T4", "NVIDIA GeForce RTX 4090",
    "AMD Instinct MI300X", "NVIDIA H200", "NVIDIA A10G", "NVIDIA L4",
)  # fmt: skip
ERRORS = (
    "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)",
    "RuntimeError: Expected all tensors to be on the same device",
    "torch.cuda.OutOfMemoryError: CUDA error: out of memory",
    "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
    "context length exceeded: 8192 tokens",
    "KeyError: 'choices'",
    "TimeoutError: request timed out after 30s",
    "NCCL error: unhandled system error, NCCL version 2.21.5",
    "ValueError: temperature must be positive",
    "grpc status UNAVAILABLE: failed to connect to all addresses",
    "OSError: [Errno 28] No space left on device",
    "HTTP 429 Too Many Requests: rate limit exceeded for tenant",
)  # fmt: skip
VERSIONS = (
    "v0.6.3.post1", "2.4.1+cu121", "0.6.3", "12.4", "535.129.03", "4.46.2", "1.45.0", "v1.30.2", "3.11.7",
    "2.2.366", "25.01", "v2.3.1-rc1",
)  # fmt: skip
NAMESPACES = ("inference-prod", "genai-staging", "llm-serving", "rag-eu-west")


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
    base = rng.choice(("vllm", "tgi-server", "inference-gateway", "triton", "embedder", "reranker"))
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
    common, rare, surnames = NAMES[lang]
    given = rng.choice(rare if rng.random() < 0.35 else common)
    surname = rng.choice(RARE_SURNAMES[lang] if rng.random() < 0.3 else surnames)
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
    return f"{local}@{rng.choice(MAIL_DOMAINS[lang])}"


def phone(rng: random.Random, lang: str) -> tuple[str, bool]:
    """A valid number of the language's country; (text, international)."""
    region = PHONE_REGION[lang]
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
    country = IBAN_COUNTRY[lang]
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
    country = {"de": "DE", "fr": "FR", "it": "IT", "es": "ES", "nl": "NL", "pl": "PL", "en": "DE"}[lang]
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


NATIONAL_IDS: dict[str, tuple[tuple[str, str, str, Callable[[random.Random], str]], ...]] = {
    # lang → (entity, label people write in that language, JSON key a tool would use, generator)
    "de": (
        ("DE_TAX_ID", "Steuer-ID", "steuer_id", de_tax_id),
        ("DE_ID_CARD", "Ausweisnummer", "id_card_number", de_id_card),
    ),
    "fr": (("FR_NIR", "numéro de sécurité sociale", "nir", fr_nir),),
    "it": (("IT_FISCAL_CODE", "codice fiscale", "codice_fiscale", it_fiscal_code),),
    "es": (("ES_NIF", "DNI", "dni", es_nif),),
    "nl": (("NL_BSN", "BSN", "bsn", nl_bsn),),
    "pl": (("PL_PESEL", "PESEL", "pesel", pl_pesel),),
    "en": (
        ("NL_BSN", "BSN", "bsn", nl_bsn),
        ("PL_PESEL", "PESEL number", "pesel", pl_pesel),
        ("FR_NIR", "French social security number", "social_security_number", fr_nir),
    ),
}  # fmt: skip


# --- templates -------------------------------------------------------------------------------
# Slots: {name} {email} {phone} (international) {phone_nat} (national, with a context word)
# {iban} {card} {natid} with {natid_label} {vat} {apikey} {jwt} {ip} {bearer} {session} {given}
# Negatives: {model} {pod} {node} {hex} {uuid} {float} {gpu} {error} {version} {ts}
PROMPTS: dict[str, tuple[str, ...]] = {
    "de": (
        "Hallo, ich bin {name} und erreiche Sie unter {phone}. Können Sie mir helfen?",
        "Bitte überweisen Sie den Betrag auf mein Konto {iban}, Inhaber {name}.",
        "Meine {natid_label} lautet {natid}, bitte im Antrag eintragen.",
        "Schreiben Sie eine freundliche Absage an {name} ({email}).",
        "Fasse die Beschwerde von {name} zusammen, Kundennummer {hex}.",
        "Warum liefert {model} auf {gpu} den Fehler {error}?",
        "Meine Kreditkarte {card} wurde abgelehnt, was soll ich tun?",
        "Unsere USt-IdNr. ist {vat}, bitte auf der Rechnung ergänzen.",
        "Ruf mich bitte an: Telefon {phone_nat}. Gruß, {name}",
        "Der Login von {ip} schlug fehl, Sitzung {uuid}, Zeitpunkt {ts}.",
        "Liebe {given}, danke für die Nachricht. Der Termin steht.",
        "Ist die {natid_label} {natid} von {name} gültig?",
        "Frau {name} hat die Mail an {email} nicht bekommen, bitte prüfen.",
    ),
    "fr": (
        "Bonjour, je m'appelle {name}, mon numéro est le {phone}.",
        "Merci de virer le montant sur le compte {iban} au nom de {name}.",
        "Mon {natid_label} est {natid}, pouvez-vous mettre à jour mon dossier ?",
        "Rédige une réponse polie à {name} ({email}) concernant sa réclamation.",
        "Pourquoi {model} renvoie-t-il {error} sur le nœud {node} ?",
        "Ma carte {card} a été refusée hier soir.",
        "Notre numéro de TVA intracommunautaire est {vat}.",
        "Appelez-moi au {phone_nat} s'il vous plaît. Cordialement, {name}",
        "Connexion refusée depuis {ip} à {ts}, identifiant de requête {uuid}.",
        "Chère {given}, votre rendez-vous est confirmé.",
        "Madame {name} n'a pas reçu le courriel envoyé à {email}.",
        "Le patient {name}, NIR {natid}, doit être rappelé.",
    ),
    "it": (
        "Ciao, sono {name}, il mio numero è {phone}.",
        "Per favore accredita l'importo sul conto {iban} intestato a {name}.",
        "Il mio {natid_label} è {natid}, potete aggiornare la pratica?",
        "Scrivi una risposta cortese a {name} ({email}) sul reclamo.",
        "Perché {model} restituisce {error} sul pod {pod}?",
        "La mia carta {card} è stata rifiutata.",
        "La nostra partita IVA è {vat}.",
        "Chiamami al numero di telefono {phone_nat}. Saluti, {name}",
        "Accesso negato da {ip} alle {ts}, richiesta {uuid}.",
        "Gentile {name}, la sua richiesta è stata registrata.",
        "Il codice fiscale {natid} appartiene a {name}?",
    ),
    "es": (
        "Hola, me llamo {name} y mi teléfono es {phone}.",
        "Por favor, transfiere el importe a la cuenta {iban} a nombre de {name}.",
        "Mi {natid_label} es {natid}, ¿pueden actualizar el expediente?",
        "Redacta una respuesta amable a {name} ({email}) sobre su queja.",
        "¿Por qué {model} devuelve {error} en el nodo {node}?",
        "Mi tarjeta {card} fue rechazada ayer.",
        "Nuestro NIF-IVA es {vat}.",
        "Llámame al teléfono {phone_nat}. Saludos, {name}",
        "Inicio de sesión rechazado desde {ip} a las {ts}, solicitud {uuid}.",
        "Estimada {name}, su cita está confirmada.",
        "El DNI {natid} corresponde a {name}, ¿es correcto?",
    ),
    "nl": (
        "Hallo, ik ben {name}, mijn nummer is {phone}.",
        "Wilt u het bedrag overmaken naar rekening {iban} op naam van {name}?",
        "Mijn {natid_label} is {natid}, kunt u mijn dossier bijwerken?",
        "Schrijf een vriendelijk antwoord aan {name} ({email}) over de klacht.",
        "Waarom geeft {model} de fout {error} op node {node}?",
        "Mijn creditcard {card} is geweigerd.",
        "Ons btw-nummer is {vat}.",
        "Bel me op telefoonnummer {phone_nat}. Groet, {name}",
        "Inlog geweigerd vanaf {ip} om {ts}, verzoek {uuid}.",
        "Beste {given}, uw afspraak staat.",
        "Meneer {name} heeft de mail aan {email} niet ontvangen.",
    ),
    "pl": (
        "Dzień dobry, nazywam się {name}, mój numer to {phone}.",
        "Proszę przelać kwotę na rachunek {iban}, właściciel {name}.",
        "Mój numer {natid_label} to {natid}, proszę zaktualizować dane.",
        "Napisz uprzejmą odpowiedź do {name} ({email}) w sprawie reklamacji.",
        "Dlaczego {model} zwraca {error} na węźle {node}?",
        "Moja karta {card} została odrzucona.",
        "Nasz NIP UE to {vat}.",
        "Zadzwoń do mnie na numer telefonu {phone_nat}. Pozdrawiam, {name}",
        "Odmowa logowania z {ip} o {ts}, żądanie {uuid}.",
        "Szanowna Pani {name}, wizyta jest potwierdzona.",
        "Pan {name} nie otrzymał maila wysłanego na {email}.",
    ),
    "en": (
        "Hi, I'm {name} and you can reach me on {phone}.",
        "Please send the refund to IBAN {iban}, account holder {name}.",
        "My {natid_label} is {natid}, can you update my record?",
        "Draft a polite reply to {name} ({email}) about the delayed order.",
        "Why does {model} fail with {error} on {gpu}?",
        "My card {card} was declined at checkout.",
        "Our VAT number is {vat}.",
        "Call me on mobile {phone_nat}. Thanks, {name}",
        "Login refused from {ip} at {ts}, request {uuid}.",
        "Summarise the ticket from {name} about pod {pod} on node {node}.",
        "Here is my key {apikey}, why does the API return 401?",
        "curl -H 'Authorization: Bearer {bearer}' https://api.example.eu/v1/chat",
        "The token {jwt} expired, how do I refresh it?",
        "Use this deploy key:\n{privkey}",
        "Cookie: JSESSIONID={session}; Path=/; HttpOnly",
        "Can you check why {given} could not log in? Her email is {email}.",
        "Ask {name} to rotate the key {apikey} before {ts}.",
        "The password is {password} for the staging database on {node}.",
    ),
}  # fmt: skip

# A second template family, written after the recognizers were tuned on the first and never used
# for tuning: results on it are reported apart ("holdout") to show how far the rules generalise.
HOLDOUT_PROMPTS: dict[str, tuple[str, ...]] = {
    "de": (
        "Kannst du {name} eine Erinnerung schicken? Die Nummer ist {phone}.",
        "Erstatte bitte 40 Euro an {iban} (Kontoinhaber: {name}).",
        "Laut Formular: {natid_label} {natid}, Geburtsort Köln.",
        "{name} meldet, dass {model} seit {ts} nur noch Fehler liefert.",
        "Zahlung mit Karte {card} fehlgeschlagen, Referenz {uuid}.",
        "Bitte die Adresse {email} aus dem Verteiler entfernen.",
    ),
    "fr": (
        "Peux-tu envoyer un rappel à {name} ? Son portable : {phone}.",
        "Remboursez 40 euros sur l'IBAN {iban}, titulaire {name}.",
        "Formulaire reçu : {natid_label} {natid}.",
        "{name} signale que {model} échoue depuis {ts}.",
        "Paiement refusé pour la carte {card}, référence {uuid}.",
        "Supprimez {email} de la liste de diffusion.",
    ),
    "it": (
        "Puoi mandare un promemoria a {name}? Il cellulare è {phone}.",
        "Rimborsa 40 euro sull'IBAN {iban}, intestato a {name}.",
        "Modulo ricevuto: {natid_label} {natid}.",
        "{name} segnala che {model} fallisce da {ts}.",
        "Pagamento rifiutato per la carta {card}, riferimento {uuid}.",
        "Rimuovi {email} dalla mailing list.",
    ),
    "es": (
        "¿Puedes enviar un recordatorio a {name}? Su móvil es {phone}.",
        "Reembolsa 40 euros al IBAN {iban}, titular {name}.",
        "Formulario recibido: {natid_label} {natid}.",
        "{name} informa de que {model} falla desde {ts}.",
        "Pago rechazado con la tarjeta {card}, referencia {uuid}.",
        "Elimina {email} de la lista de distribución.",
    ),
    "nl": (
        "Kun je {name} een herinnering sturen? Het nummer is {phone}.",
        "Betaal 40 euro terug op {iban} (rekeninghouder {name}).",
        "Formulier ontvangen: {natid_label} {natid}.",
        "{name} meldt dat {model} sinds {ts} faalt.",
        "Betaling met kaart {card} mislukt, referentie {uuid}.",
        "Verwijder {email} uit de verzendlijst.",
    ),
    "pl": (
        "Czy możesz wysłać przypomnienie do {name}? Numer: {phone}.",
        "Zwróć 40 euro na konto {iban}, posiadacz {name}.",
        "Otrzymany formularz: {natid_label} {natid}.",
        "{name} zgłasza, że {model} nie działa od {ts}.",
        "Płatność kartą {card} nieudana, referencja {uuid}.",
        "Usuń {email} z listy mailingowej.",
    ),
    "en": (
        "Could you send {name} a reminder? The number is {phone}.",
        "Refund 40 euros to {iban} (account name: {name}).",
        "Form received: {natid_label} {natid}.",
        "{name} reports that {model} has been failing since {ts}.",
        "Payment with card {card} failed, reference {uuid}.",
        "Remove {email} from the mailing list.",
        "Our staging key is {apikey}; production uses a different one.",
        "export OPENAI_API_KEY={apikey}",
        "Set-Cookie: session_token={session}; Secure",
    ),
}  # fmt: skip

HOLDOUT_TOOL_ARGS: tuple[str, ...] = (
    '{{"contact": {{"full_name": "{name}", "mobile": "{phone}"}}}}',
    '{{"payee_iban": "{iban}", "memo": "refund {uuid}"}}',
    '{{"filters": {{"email": "{email}", "since": "{ts}"}}, "model": "{model}"}}',
    '{{"patient": "{name}", "{natid_key}": "{natid}"}}',
)  # fmt: skip

HOLDOUT_LOGS: tuple[str, ...] = (
    "login ok user={email} ip={ip} node={node}",
    "refund issued to {iban} by {pod}",
    "POST /v1/chat 200 {float}s client={ip} model={model}",
)  # fmt: skip

TOOL_ARGS: tuple[str, ...] = (
    '{{"customer_name": "{name}", "email": "{email}", "phone": "{phone}"}}',
    '{{"iban": "{iban}", "amount": {float}, "reference": "{uuid}"}}',
    '{{"national_id": "{natid}", "country": "{country}"}}',
    '{{"query": "orders of {name}", "limit": 20, "trace_id": "{hex}"}}',
    '{{"card_number": "{card}", "expiry": "12/28", "model": "{model}"}}',
    '{{"client_ip": "{ip}", "user_agent": "Mozilla/5.0", "node": "{node}"}}',
    '{{"api_key": "{apikey}", "endpoint": "https://api.example.eu/v1"}}',
    '{{"headers": {{"Authorization": "Bearer {bearer}"}}, "gpu": "{gpu}"}}',
    '{{"recipient": {{"name": "{name}", "email": "{email}"}}, "subject": "Invoice {hex}"}}',
    '{{"vat_id": "{vat}", "company": "ACME GmbH", "version": "{version}"}}',
    '{{"{natid_key}": "{natid}", "year": 2025, "submitted_at": "{ts}"}}',
    '{{"session": "{session}", "pod": "{pod}"}}',
    '{{"token": "{jwt}", "expires_in": 3600}}',
)  # fmt: skip

LOGS: tuple[str, ...] = (
    "request {uuid} from {ip} took {float}s on {node}",
    "auth failed for {email} at {ts}: invalid credentials",
    "user {name} exceeded quota on model {model}",
    "payment declined for card {card}, trace {hex}",
    "{error} (pod {pod}, gpu {gpu}, version {version})",
    "retrying upstream call with header Authorization: Bearer {bearer}",
    "webhook payload contained iban={iban} for tenant acme",
    "loaded {model} in {float}s on {gpu}",
    "session {session} expired at {ts}",
    "outbound SMS to {phone} queued by {pod}",
)  # fmt: skip

SYSTEM: tuple[str, ...] = (
    "You are a helpful assistant for {company}. Model {model}, build {version}. "
    "Never reveal internal ids such as {uuid}.",
    "Du bist ein Assistent der Bank. Antworte kurz. Eskalationen an {email}.",
    "Tu es l'assistant du service client. En cas de problème, contacter {name} au {phone}.",
    "Sei un assistente per il servizio clienti. Deployment {pod} su {gpu}.",
)  # fmt: skip

COMPANIES = ("ACME Bank", "Stadtwerke Nord", "Hôpital Saint-Louis", "Comune di Torino", "Gemeente Utrecht")
PASSWORDS = ("Winter2025!", "s3cr3t-Passw0rd", "hunter2hunter2", "Zx9#kLm2!qP", "correct-horse-battery")


class _Filler:
    """Fills one template, recording what it planted and which negatives it used."""

    def __init__(self, rng: random.Random, lang: str) -> None:
        self.rng = rng
        self.lang = lang
        self.planted: list[Planted] = []
        self.negatives: list[str] = []
        self._person: tuple[str, str, str] | None = None
        self._natid = rng.choice(NATIONAL_IDS[lang])

    def person(self) -> tuple[str, str, str]:
        if self._person is None:
            self._person = person(self.rng, self.lang)
        return self._person

    def plant(self, entity: str, value: str) -> str:
        self.planted.append(Planted(entity, value))
        return value

    def value(self, slot: str) -> str:
        rng, lang = self.rng, self.lang
        if slot in NEGATIVES:
            v = NEGATIVES[slot](rng)
            self.negatives.append(v)
            return v
        if slot == "name":
            return self.plant("PERSON", self.person()[0])
        if slot == "given":
            return self.plant("PERSON", self.person()[1])
        if slot == "email":
            _, g, s = self.person()
            return self.plant("EMAIL_ADDRESS", email(rng, lang, g, s))
        if slot == "phone":
            while True:
                text, international = phone(rng, lang)
                if international:
                    return self.plant("PHONE_NUMBER", text)
        if slot == "phone_nat":
            return self.plant("PHONE_NUMBER", phone(rng, lang)[0])
        if slot == "natid":
            return self.plant(self._natid[0], self._natid[3](rng))
        if slot == "natid_label":
            return self._natid[1]
        if slot == "natid_key":
            return self._natid[2]
        if slot == "country":
            return PHONE_REGION[lang]
        if slot == "company":
            return rng.choice(COMPANIES)
        simple: dict[str, tuple[str, Callable[[], str]]] = {
            "iban": ("IBAN_CODE", lambda: iban(rng, lang)),
            "card": ("CREDIT_CARD", lambda: card(rng)),
            "vat": ("EU_VAT", lambda: vat(rng, lang)),
            "apikey": ("API_KEY", lambda: api_key(rng)),
            "jwt": ("JWT", lambda: jwt(rng)),
            "ip": ("IP_ADDRESS", lambda: ip(rng)),
            "bearer": ("AUTH_TOKEN", lambda: bearer(rng)),
            "session": ("SESSION_TOKEN", lambda: session_id(rng)),
            "privkey": ("PRIVATE_KEY", lambda: private_key(rng)),
            "password": ("SECRET", lambda: rng.choice(PASSWORDS)),
        }
        entity, make = simple[slot]
        return self.plant(entity, make())


def _fill(template: str, rng: random.Random, lang: str, json_values: bool = False) -> tuple[str, _Filler]:
    filler = _Filler(rng, lang)
    fields = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    values = {}
    for name in dict.fromkeys(fields):
        v = filler.value(name)
        # Inside a JSON template a value must be a valid JSON string body (PEM newlines etc.).
        values[name] = json.dumps(v, ensure_ascii=False)[1:-1] if json_values else v
    return template.format(**values), filler


def generate(n: int, seed: int = 7, holdout_share: float = 0.3) -> list[Sample]:
    """``n`` samples: about 60% prompts, 20% tool-call arguments, 12% logs, 8% system prompts;
    ``holdout_share`` of prompts, tool arguments and logs come from the holdout templates."""
    rng = random.Random(seed)
    out: list[Sample] = []
    for _ in range(n):
        lang = rng.choice(LANGUAGES)
        r = rng.random()
        holdout = rng.random() < holdout_share
        if r < 0.6:
            kind, template, as_json = "prompt", rng.choice((HOLDOUT_PROMPTS if holdout else PROMPTS)[lang]), False
        elif r < 0.8:
            kind, template, as_json = "tool_args", rng.choice(HOLDOUT_TOOL_ARGS if holdout else TOOL_ARGS), True
        elif r < 0.92:
            kind, template, as_json = "log", rng.choice(HOLDOUT_LOGS if holdout else LOGS), False
        else:
            kind, template, as_json, holdout = "system", rng.choice(SYSTEM), False, False
        text, filler = _fill(template, rng, lang, json_values=as_json)
        if as_json:
            json.loads(text)  # templates must produce valid JSON; fail loudly here if not
        split = "holdout" if holdout else "dev"
        out.append(Sample(kind, lang, text, tuple(filler.planted), tuple(filler.negatives), split))
    return out


def as_messages(sample: Sample) -> str:
    """The sample as a ``gen_ai.input.messages`` value (GenAI semantic conventions)."""
    if sample.kind == "tool_args":
        part = {"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": json.loads(sample.text)}
        return json.dumps([{"role": "assistant", "parts": [part]}], ensure_ascii=False)
    role = "system" if sample.kind == "system" else "user"
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": sample.text}]}], ensure_ascii=False)


# --- evaluation ------------------------------------------------------------------------------
_PARTICLES = frozenset(
    {"van", "von", "de", "der", "den", "del", "della", "di", "da", "dos", "du", "la", "le", "ten", "ter", "zu", "y"}
)


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        head = value.lstrip()[:1]
        if head in ("{", "["):
            with contextlib.suppress(ValueError):
                yield from _strings(json.loads(value))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif value is not None:
        yield str(value)


def visible_text(output: str) -> str:
    """Everything a reader of ``output`` can see: the text and, if it is JSON, every decoded string
    (at any depth, JSON inside strings too), so escaping cannot hide a leak."""
    return "\n".join(_strings(output))


def _compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).casefold()


def leaked(planted: Planted, output: str) -> bool:
    """Whether any recognisable part of a planted value survives in ``output``.

    Names leak if any name part (3+ letters, particles aside) is still a word of the output.
    E-mail addresses leak if the address or its local part before an ``@`` survives (the local
    part alone is often the person's name, which is scored as a name). Other values leak if they
    appear verbatim, or if at least half of their characters survive in runs of six or more
    (separators ignored), so a half-masked IBAN or card still counts.
    """
    seen = visible_text(output)
    if planted.value in seen:
        return True
    if planted.entity == "EMAIL_ADDRESS":
        local = planted.value.split("@", 1)[0]
        return planted.value.casefold() in seen.casefold() or re.search(rf"{re.escape(local)}\s*@", seen) is not None
    if planted.entity == "PERSON":
        parts = [p for p in re.split(r"[\s-]+", planted.value) if len(p) >= 3 and p.lower() not in _PARTICLES]
        return any(re.search(rf"(?<!\w){re.escape(p)}(?!\w)", seen, re.IGNORECASE) for p in parts)
    value, text = _compact(planted.value), _compact(seen)
    return _surviving_share(value, text) >= 0.5


def _surviving_share(value: str, text: str, run: int = 6) -> float:
    """The share of ``value``'s characters that appear in ``text`` in runs of at least ``run``
    characters (a masked middle with both ends left still counts as mostly surviving)."""
    if len(value) < run:
        return 1.0 if value and value in text else 0.0
    covered, i = 0, 0
    while i <= len(value) - run:
        length = 0
        while i + length < len(value) and value[i : i + length + 1] in text:
            length += 1
        if length >= run:
            covered += length
            i += length
        else:
            i += 1
    return covered / len(value)


@dataclass
class EntityScore:
    """Planted and leaked counts for one entity type."""

    planted: int = 0
    leaked: int = 0

    @property
    def leak_rate(self) -> float:
        """Leaked / planted (0 when nothing was planted)."""
        return self.leaked / self.planted if self.planted else 0.0


@dataclass
class Evaluation:
    """Leak and false-positive results of one masking run over a corpus."""

    entities: dict[str, EntityScore] = field(default_factory=dict)
    negatives: dict[str, EntityScore] = field(default_factory=dict)  # per negative kind: planted/altered
    # Names with a given name or surname in the gazetteers, and names with neither.
    names_in_gazetteer: EntityScore = field(default_factory=EntityScore)
    names_outside_gazetteer: EntityScore = field(default_factory=EntityScore)
    invalid_json: int = 0
    leaked_examples: list[tuple[str, str]] = field(default_factory=list)
    altered_examples: list[str] = field(default_factory=list)

    @property
    def planted(self) -> int:
        """All planted values."""
        return sum(e.planted for e in self.entities.values())

    @property
    def leaked(self) -> int:
        """All leaked values."""
        return sum(e.leaked for e in self.entities.values())

    @property
    def leak_rate(self) -> float:
        """Leaked / planted over all entity types."""
        return self.leaked / self.planted if self.planted else 0.0

    @property
    def negatives_total(self) -> int:
        """All negatives."""
        return sum(e.planted for e in self.negatives.values())

    @property
    def negatives_altered(self) -> int:
        """Negatives no longer present verbatim."""
        return sum(e.leaked for e in self.negatives.values())

    @property
    def false_positive_rate(self) -> float:
        """Altered negatives / negatives."""
        return self.negatives_altered / self.negatives_total if self.negatives_total else 0.0


def _negative_kind(value: str) -> str:
    for kind, values in (("model", MODELS), ("gpu", GPUS), ("error", ERRORS), ("version", VERSIONS)):
        if value in values:
            return kind
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", value):
        return "uuid"
    if re.fullmatch(r"(?:sha256:)?[0-9a-f]{16,64}", value):
        return "hex id"
    if re.fullmatch(r"[\d.e+-]+", value) and "." in value and value.count(".") == 1:
        return "float"
    if re.fullmatch(r"\d{10,13}|\d{4}-\d\d-\d\d.*|\w{3}, .*GMT", value):
        return "timestamp"
    if value.startswith(("gpu-node", "aks-", "gke-", "ip-", "worker-")):
        return "node"
    return "pod"


def evaluate(samples: Sequence[Sample], outputs: Sequence[str], gazetteer: frozenset[str] = frozenset()) -> Evaluation:
    """Score masked ``outputs`` (one per sample, same order) against what each sample planted."""
    ev = Evaluation()
    for sample, output in zip(samples, outputs, strict=True):
        if sample.kind == "tool_args":
            try:
                json.loads(output)
            except ValueError:
                ev.invalid_json += 1
        seen = visible_text(output)
        for p in sample.planted:
            score = ev.entities.setdefault(p.entity, EntityScore())
            score.planted += 1
            hit = leaked(p, output)
            score.leaked += hit
            if hit and len(ev.leaked_examples) < 40:
                ev.leaked_examples.append((p.entity, p.value))
            if p.entity == "PERSON" and gazetteer:
                known = any(part in gazetteer for part in p.value.split())
                bucket = ev.names_in_gazetteer if known else ev.names_outside_gazetteer
                bucket.planted += 1
                bucket.leaked += hit
        for neg in sample.negatives:
            score = ev.negatives.setdefault(_negative_kind(neg), EntityScore())
            score.planted += 1
            altered = neg not in seen
            score.leaked += altered
            if altered and len(ev.altered_examples) < 40:
                ev.altered_examples.append(neg)
    return ev
