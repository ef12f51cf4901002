"""Check-digit algorithms the recognizers use to tell real identifiers from look-alike numbers."""

from __future__ import annotations

import datetime as dt

# IBAN length per country (SEPA and associated countries; ISO 13616 registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
# Countries whose BBAN (the part after the check digits) is digits only in the ISO 13616 registry:
# a candidate with letters there is no IBAN, however its MOD 97 turns out (a hex id such as
# ``be21ef9be5e6d09e`` passes the length and, one time in 97, the check digits).
IBAN_NUMERIC_BBAN = frozenset({
    "AE", "AT", "BA", "BE", "CR", "CZ", "DE", "DK", "EE", "EG", "ES", "FI", "FO", "GL", "HR", "HU", "IL",
    "IS", "LT", "ME", "MR", "NO", "PL", "PT", "RS", "SE", "SI", "SK", "ST", "TL", "TN", "VA", "XK",
})


def digits_only(text: str) -> str:
    """The decimal digits of ``text``, in order."""
    return "".join(c for c in text if c.isdigit())


def alnum_upper(text: str) -> str:
    """``text`` without separators, upper-cased."""
    return "".join(c for c in text if c.isalnum()).upper()


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards and Italian VAT numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mod97(text: str) -> int:
    """ISO 7064 MOD 97-10 remainder of an alphanumeric string (letters count A=10 … Z=35)."""
    remainder = 0
    for c in text:
        value = int(c, 36)
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder


def iban_valid_prefix(compact: str) -> str | None:
    """The valid IBAN at the start of ``compact`` (no spaces, upper case), or None.

    Looking at the prefix of the country's length lets a match that ran into a following
    BIC-like word still be recognised.
    """
    length = IBAN_LENGTHS.get(compact[:2])
    if length is None or len(compact) < length:
        return None
    candidate = compact[:length]
    if not candidate[2:4].isdigit() or not candidate.isalnum():
        return None
    if candidate[:2] in IBAN_NUMERIC_BBAN and not candidate[4:].isdigit():
        return None
    return candidate if mod97(candidate[4:] + candidate[:4]) == 1 else None


def iso7064_mod11_10(digits: str) -> int:
    """The ISO 7064 MOD 11,10 check digit of ``digits`` (German tax id and VAT number)."""
    product = 10
    for c in digits:
        total = (int(c) + product) % 10
        if total == 0:
            total = 10
        product = (total * 2) % 11
    check = 11 - product
    return 0 if check == 10 else check


def de_tax_id_valid(digits: str) -> bool:
    """German Steuerliche Identifikationsnummer: 11 digits, digit-repetition rule and check digit."""
    if len(digits) != 11 or not digits.isdigit() or digits[0] == "0":
        return False
    head = digits[:10]
    counts = sorted((head.count(d) for d in set(head)), reverse=True)
    # Exactly one digit occurs twice or three times; the others at most once.
    if counts[0] not in (2, 3) or (len(counts) > 1 and counts[1] != 1):
        return False
    return iso7064_mod11_10(head) == int(digits[10])


_ICAO_VALUES = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def icao_check_digit(text: str) -> int:
    """The 7-3-1 check digit of machine-readable travel documents (German ID card serials)."""
    weights = (7, 3, 1)
    return sum(_ICAO_VALUES[c] * weights[i % 3] for i, c in enumerate(text)) % 10


def de_id_card_valid(serial: str) -> bool:
    """German ID card (Personalausweis) serial: 9 characters and a 7-3-1 check digit."""
    s = serial.upper()
    return (
        len(s) == 10 and s[9].isdigit() and all(c in _ICAO_VALUES for c in s) and icao_check_digit(s[:9]) == int(s[9])
    )


def fr_nir_valid(compact: str) -> bool:
    """French social security number (NIR): 13 characters and a two-digit key (97 - n mod 97)."""
    if len(compact) != 15 or compact[0] not in "12378":
        return False
    body = compact[:13].upper()
    # Corsican departments 2A / 2B are computed as 19 / 18 before the key.
    corsica = {"2A": "19", "2B": "18"}.get(body[5:7])
    if corsica is not None:
        body = body[:5] + corsica + body[7:]
    if not body.isdigit() or not compact[13:].isdigit():
        return False
    month = int(body[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    return 97 - int(body) % 97 == int(compact[13:])


CF_ODD_VALUES = {
    **dict(zip("0123456789", (1, 0, 5, 7, 9, 13, 15, 17, 19, 21), strict=True)),
    **dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
               (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23),
               strict=True)),
}  # fmt: skip


def it_fiscal_code_valid(code: str) -> bool:
    """Italian codice fiscale: 16 characters whose last is a check letter over the first 15."""
    c = code.upper()
    if len(c) != 16 or not c.isalnum():
        return False
    total = 0
    for i, ch in enumerate(c[:15]):
        if i % 2 == 0:  # 1-based odd positions
            total += CF_ODD_VALUES[ch]
        else:
            total += int(ch) if ch.isdigit() else ord(ch) - 65
    return chr(65 + total % 26) == c[15]


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_nif_valid(compact: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): mod-23 control letter."""
    c = compact.upper()
    if len(c) != 9:
        return False
    body = c[:8]
    if body[0] in "XYZ":
        body = str("XYZ".index(body[0])) + body[1:]
    if not body.isdigit() or not c[8].isalpha():
        return False
    return _DNI_LETTERS[int(body) % 23] == c[8]


def nl_bsn_valid(digits: str) -> bool:
    """Dutch burgerservicenummer: 9 digits passing the eleven-test (weights 9..2, last -1)."""
    if len(digits) != 9 or not digits.isdigit() or digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - int(digits[8])
    return total % 11 == 0


def pl_pesel_valid(digits: str) -> bool:
    """Polish PESEL: 11 digits, a valid encoded birth date and a weighted check digit."""
    if len(digits) != 11 or not digits.isdigit():
        return False
    weights = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
    check = (10 - sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 10) % 10
    if check != int(digits[10]):
        return False
    year, month, day = int(digits[0:2]), int(digits[2:4]), int(digits[4:6])
    century = {0: 1900, 1: 2000, 2: 2100, 3: 2200, 4: 1800}.get(month // 20)
    if century is None:
        return False
    try:
        dt.date(century + year, month % 20, day)
    except ValueError:
        return False
    return True


def _weighted_mod11(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11


def eu_vat_check(compact: str) -> bool | None:
    """Check digits of an EU VAT id (country prefix included): True/False where the algorithm is
    implemented here, None for countries whose format alone is checked."""
    country, number = compact[:2], compact[2:]
    if country == "DE" and len(number) == 9 and number.isdigit():
        return iso7064_mod11_10(number[:8]) == int(number[8])
    if country == "IT" and len(number) == 11 and number.isdigit():
        return luhn_valid(number)
    if country == "FR" and len(number) == 11 and number.isdigit():
        return int(number[:2]) == (12 + 3 * (int(number[2:]) % 97)) % 97
    if country == "FR":
        return None  # alphanumeric keys use a different scheme
    if country == "NL" and len(number) == 12 and number[9] == "B":
        digits = number[:9]
        # Since 2020 sole traders have numbers checked by mod 97 over the whole id instead.
        return nl_bsn_valid(digits) or mod97("NL" + number) == 1
    if country == "PL" and len(number) == 10 and number.isdigit():
        return _weighted_mod11(number[:9], (6, 5, 7, 2, 3, 4, 5, 6, 7)) == int(number[9])
    if country == "BE" and len(number) == 10 and number.isdigit():
        return 97 - int(number[:8]) % 97 == int(number[8:])
    if country == "AT" and len(number) == 9 and number[0] == "U" and number[1:].isdigit():
        d = [int(c) for c in number[1:]]
        s = sum(d[i] if i % 2 == 0 else (d[i] * 2 // 10 + d[i] * 2 % 10) for i in range(7))
        return (96 - s) % 10 == d[7]
    return None


# Unix time from 2000-01-01 to 2038-01-19 (2**31 s); telemetry writes it in s, ms, µs and ns. The
# range stops there so that card numbers starting 22-27 (Mastercard) are never read as times.
_EPOCH_MIN, _EPOCH_MAX = 946_684_800, 2_147_483_648


def looks_like_epoch(digits: str) -> bool:
    """Whether ``digits`` read as a Unix timestamp in s, ms, µs or ns falls in 2000-2038."""
    if len(digits) not in (10, 13, 16, 19) or digits[0] == "0":
        return False
    return _EPOCH_MIN <= int(digits[:10]) < _EPOCH_MAX


def us_ssn_valid(digits: str) -> bool:
    """US SSN structure: area not 000, 666 or 9xx; group not 00; serial not 0000.

    Placeholders such as ``123-45-6789`` pass: masking one costs nothing, missing a real one leaks."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return not (area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000")
