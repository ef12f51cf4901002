"""Tests for processors.recognizers: each recognizer finds its identifiers and leaves look-alikes."""

from __future__ import annotations

import pytest

from processors.recognizers import REGISTRY, check_registry, default_recognizers
from processors.recognizers import checksums as cs
from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.scan import Finding, Scanner, merge

SCANNER = Scanner(default_recognizers())
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"

POSITIVES = [
    ("EMAIL_ADDRESS", "Schreib an anna.schmidt@web.de bitte", "anna.schmidt@web.de"),
    ("EMAIL_ADDRESS", "contact: j.dubois+news@hopital-lyon.fr.", "j.dubois+news@hopital-lyon.fr"),
    ("PHONE_NUMBER", "ruf an: +49 30 901820", "+49 30 901820"),
    ("PHONE_NUMBER", "tel 0033 6 12 34 56 78 merci", "0033 6 12 34 56 78"),
    ("PHONE_NUMBER", "Telefon 030 901820 abends", "030 901820"),
    ("PHONE_NUMBER", "teléfono 612 20 73 02", "612 20 73 02"),
    # Phones: North-American punctuation, extensions, national trunk formats without a context word.
    ("PHONE_NUMBER", "reach me at (212) 555-0143 after lunch", "(212) 555-0143"),
    ("PHONE_NUMBER", "office 212.555.0143 today", "212.555.0143"),
    ("PHONE_NUMBER", "dial +1-212-555-0143 now", "+1-212-555-0143"),
    ("PHONE_NUMBER", "desk 415-555-0100 ext. 42 please", "415-555-0100 ext. 42"),
    ("PHONE_NUMBER", "Er ist unter 0171 2345678 erreichbar", "0171 2345678"),
    ("PHONE_NUMBER", "Büro 030 12345678 ab neun", "030 12345678"),
    ("PHONE_NUMBER", "appelez le 06 12 34 56 78 demain", "06 12 34 56 78"),
    ("PHONE_NUMBER", "numer 512 345 678 wieczorem", "512 345 678"),
    ("PHONE_NUMBER", "ring 020 7946 0958 tomorrow", "020 7946 0958"),
    ("PHONE_NUMBER", "bel 06-12345678 morgen", "06-12345678"),
    ("US_SSN", "my SSN is 536-22-1847 ok", "536-22-1847"),
    ("US_SSN", "ssn 536221847", "536221847"),
    ("US_SSN", "recorded 536 22 1847 on file", "536 22 1847"),
    # Cards: Luhn and a card-like shape decide; an unknown issuer prefix does not stop them.
    ("CREDIT_CARD", "number 3712 3456 7890 1234 expired", "3712 3456 7890 1234"),
    ("CREDIT_CARD", "paid with 3712345678901234 yesterday", "3712345678901234"),
    ("CREDIT_CARD", "card 1800-1234-5678-905 was charged", "1800-1234-5678-905"),
    ("CREDIT_CARD", "diners 3056 930902 5904", "3056 930902 5904"),
    # Street addresses in each supported language's order.
    (
        "STREET_ADDRESS",
        "ship to 1600 Pennsylvania Avenue NW, Washington, DC 20500 asap",
        "1600 Pennsylvania Avenue NW, Washington, DC 20500",
    ),
    ("STREET_ADDRESS", "I moved to 42 Oak St. Apt 5 last year", "42 Oak St. Apt 5"),
    ("STREET_ADDRESS", "Flat 3, Martyn Landing, Leeds, LS1 4AP", "Flat 3, Martyn Landing, Leeds, LS1 4AP"),
    ("STREET_ADDRESS", "Ich wohne in der Hauptstraße 12, 10115 Berlin.", "Hauptstraße 12, 10115 Berlin"),
    ("STREET_ADDRESS", "Lieferung an Gerd-Weihmann-Weg 5/3", "Gerd-Weihmann-Weg 5/3"),
    ("STREET_ADDRESS", "j'habite 12 rue de la Paix, 75002 Paris", "12 rue de la Paix, 75002 Paris"),
    (
        "STREET_ADDRESS",
        "mieszkam przy ul. Marszałkowska 10/4, 00-590 Warszawa",
        "ul. Marszałkowska 10/4, 00-590 Warszawa",
    ),
    ("STREET_ADDRESS", "vivo en Calle Mayor 5, 28013 Madrid", "Calle Mayor 5, 28013 Madrid"),
    ("STREET_ADDRESS", "abito in Via Roma 10, 00184 Roma (RM)", "Via Roma 10, 00184 Roma (RM)"),
    ("STREET_ADDRESS", "ik woon op Kerkstraat 5, 1017 GC Amsterdam", "Kerkstraat 5, 1017 GC Amsterdam"),
    ("IBAN_CODE", "IBAN DE89 3704 0044 0532 0130 00 bitte", "DE89 3704 0044 0532 0130 00"),
    ("IBAN_CODE", "naar NL91ABNA0417164300.", "NL91ABNA0417164300"),
    ("CREDIT_CARD", "card 4111 1111 1111 1111 declined", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "amex 3782 822463 10005", "3782 822463 10005"),
    ("IP_ADDRESS", "from 85.12.33.201 at noon", "85.12.33.201"),
    ("IP_ADDRESS", "peer 2001:db8::8a2e:370:7334 reset", "2001:db8::8a2e:370:7334"),
    ("API_KEY", "key sk-proj-abcdefghijklmnopqrstuvwx1234", "sk-proj-abcdefghijklmnopqrstuvwx1234"),
    ("API_KEY", "AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE"),
    ("API_KEY", "token ghp_0123456789abcdefghijklmnopqrstuvwxyz", "ghp_0123456789abcdefghijklmnopqrstuvwxyz"),
    (
        "JWT",
        "jwt " + JWT,
        JWT,
    ),
    ("AUTH_TOKEN", "Authorization: Bearer abcDEF123456ghiJKL789", "abcDEF123456ghiJKL789"),
    (
        "SESSION_TOKEN",
        "Cookie: JSESSIONID=5729FAE923D5A4FD12AABFE228F219E9; Path=/",
        "5729FAE923D5A4FD12AABFE228F219E9",
    ),
    ("SECRET", "password=hunter22 for db", "hunter22"),
    ("PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", None),
    ("EU_VAT", "USt-IdNr. DE136695976", "DE136695976"),
    ("DE_TAX_ID", "Steuer-ID 86 095 742 719", "86 095 742 719"),
    ("FR_NIR", "NIR 2 55 08 14 168 025 38", "2 55 08 14 168 025 38"),
    ("IT_FISCAL_CODE", "codice fiscale RSSMRA85T10A562S", "RSSMRA85T10A562S"),
    ("ES_NIF", "DNI 12345678Z", "12345678Z"),
    ("ES_NIF", "DNI 12.345.678-Z", "12.345.678-Z"),
    ("ES_NIF", "NIE X1234567L", "X1234567L"),
    ("NL_BSN", "mijn BSN is 111222333", "111222333"),
    ("PL_PESEL", "PESEL 44051401359", "44051401359"),
    ("PERSON", "Bitte schreiben Sie an Jan Kowalski wegen der Rechnung.", "Jan Kowalski"),
    ("PERSON", "je m'appelle Gaspard Kervella", "Gaspard Kervella"),
    ("PERSON", "a reply to Imogen Featherstone about it", "Imogen Featherstone"),
]

NEGATIVES = [
    ("timestamp fraction", "request at 2026-11-07T10:22:04.630006Z failed"),
    ("model name", "served by llama-3.1-8b-instruct on vllm"),
    ("pod name", "pod vllm-7d9f8b6c4-x2kqp restarted"),
    ("trace id", "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7"),
    ("uuid", "request 123e4567-e89b-42d3-a456-426614174000"),
    ("version", "vLLM v0.6.3.post1 with torch 2.4.1+cu121 and driver 535.129.03"),
    ("4-part version", "image tag v1.2.3.4"),
    ("timestamp", "at 2026-11-03T10:22:31.123Z (1762165351123)"),
    ("float", "loss 0.7321 lr 3.00e-04"),
    ("gpu", "NVIDIA A100-SXM4-80GB and AMD Instinct MI300X"),
    ("error", "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)"),
    ("loopback", "listening on 127.0.0.1:8000 and [::1]:8000"),
    ("network prefix", "client 10.1.2.0/24"),
    ("invalid iban", "DE89 3704 0044 0532 0130 01"),
    ("invalid luhn", "4111 1111 1111 1112"),
    ("mac address", "eth0 aa:bb:cc:dd:ee:ff"),
    ("clock time", "took 00:01:02 at 10:22:31"),
    ("bare 9 digits without context", "bytes 123456782 sent"),
    ("epoch milliseconds (Luhn-valid)", "ts 1700000000004 ok"),
    ("epoch microseconds (Luhn-valid)", "start_time_unix_us=1700000000000001"),
    ("epoch nanoseconds (Luhn-valid)", "time_unix_nano 1700000000000000004"),
    ("12-digit account id", "account 639076378095 quota"),
    ("digit groups continuing an id", "ref 12 3712 3456 7890 1234"),
    ("iso timestamp with micros", "at 1973-11-30T22:17:04.730129"),
    ("durations and ports", "took 1234 ms on port 8080, p99 0171.23 ms"),
    ("bare 10 digits without context", "bytes 2125550143 sent"),
    ("ssn-shaped but area 000", "code 000-12-3456"),
    ("ssn-shaped but area 9xx", "code 912-34-5678"),
    ("version triple", "driver 535.129.03 cuda 12.4"),
    ("date range", "2024-01-15 to 2024-02-15"),
    ("model and year", "Llama 3 released in 2024 with 8 heads"),
    ("file path with numbers", "/var/log/app/worker-12/run 42.log"),
    ("string with number", "String 3 of 4 parsed"),
]


class TestRecognizers:
    @pytest.mark.parametrize(("entity", "text", "expected"), POSITIVES, ids=[p[0] + ":" + p[1][:20] for p in POSITIVES])
    def test_finds_planted_value(self, entity: str, text: str, expected: str | None) -> None:
        """Each entity type is found with exactly the span of the identifier."""
        found = SCANNER.scan(text)
        spans = [(f.entity, text[f.start : f.end]) for f in found]
        if expected is None:
            assert [e for e, _ in spans] == [entity]
        else:
            assert (entity, expected) in spans

    @pytest.mark.parametrize(("name", "text"), NEGATIVES, ids=[n[0] for n in NEGATIVES])
    def test_leaves_telemetry_look_alikes(self, name: str, text: str) -> None:
        """Telemetry strings that resemble identifiers are not detected."""
        assert SCANNER.scan(text) == []

    def test_context_word_decides_weak_matches(self) -> None:
        """A checksum-valid BSN without context is left; the same number after 'BSN' is masked."""
        assert SCANNER.scan("id 111222333") == []
        assert [f.entity for f in SCANNER.scan("BSN 111222333")] == ["NL_BSN"]
        assert [f.entity for f in SCANNER.scan("111222333", context="bsn")] == ["NL_BSN"]

    def test_normalised_values_join_spellings(self) -> None:
        """Grouped and compact forms of one IBAN normalise to the same value."""
        a = SCANNER.scan("DE89 3704 0044 0532 0130 00")[0]
        b = SCANNER.scan("de89370400440532013000 please", context="iban")[0]
        assert a.value == b.value == "DE89370400440532013000"

    @pytest.mark.parametrize("cls", REGISTRY, ids=[c.__name__ for c in REGISTRY])
    def test_fast_path_agrees_with_presidio(self, cls: type[SovtelRecognizer]) -> None:
        """The scanner and Presidio's own PatternRecognizer.analyze mask the same spans (before context)."""
        rec = cls()
        texts = [p[1] for p in POSITIVES] + [n[1] for n in NEGATIVES]
        solo = Scanner([rec], threshold=0.01)
        for text in texts:
            theirs = [Finding(r.entity_type, r.start, r.end, r.score, "") for r in rec.analyze(text, [rec.ENTITY])]
            presidio = {(f.start, f.end) for f in merge([f for f in theirs if f.score > 0], text)}
            ours = {(f.start, f.end) for f in merge(solo._pattern_findings(text, ""), text)}
            assert ours == presidio, (cls.__name__, text)

    @pytest.mark.parametrize(
        ("text", "entity"),
        [
            ("call 3582268663 tomorrow", "PHONE_NUMBER"),
            ("card 6392 0000 0000 0003", "CREDIT_CARD"),
            ("carta 639208765433", "CREDIT_CARD"),
        ],
    )
    def test_context_decides_bare_numbers(self, text: str, entity: str) -> None:
        """Bare national phone digits and short Maestro numbers are found next to a context word only."""
        assert [f.entity for f in SCANNER.scan(text)] == [entity]
        bare = text.split(" ", 1)[1]
        assert SCANNER.scan("value " + bare) == [] or (entity == "CREDIT_CARD" and " " in bare)

    def test_registry_rejects_presidio_names(self) -> None:
        """A recognizer named like a Presidio predefined one is refused at registration."""

        class EmailRecognizer(SovtelRecognizer):
            ENTITY = "EMAIL_ADDRESS"
            PATTERNS = (("x", "x@y", 0.5),)

        with pytest.raises(ValueError, match="Presidio predefined"):
            check_registry((EmailRecognizer,))

    def test_registry_rejects_duplicates(self) -> None:
        """The same recognizer registered twice is refused."""
        with pytest.raises(ValueError, match="twice"):
            check_registry((REGISTRY[0], REGISTRY[0]))


class TestMerge:
    def test_overlaps_become_one_span(self) -> None:
        """Overlapping findings are masked as their union, typed by the best score."""
        text = "Bearer eyJabc.def.ghi"
        out = merge([Finding("AUTH_TOKEN", 7, 21, 0.85, "a"), Finding("JWT", 7, 20, 1.0, "b")], text)
        assert [(f.entity, f.start, f.end) for f in out] == [("JWT", 7, 21)]


class TestChecksums:
    @pytest.mark.parametrize(
        ("fn", "good", "bad"),
        [
            (cs.luhn_valid, "4111111111111111", "4111111111111112"),
            (lambda v: cs.iban_valid_prefix(v) is not None, "GB82WEST12345698765432", "GB82WEST12345698765433"),
            (cs.de_tax_id_valid, "86095742719", "86095742718"),
            (cs.de_id_card_valid, "T220001293", "T220001294"),
            (cs.fr_nir_valid, "255081416802538", "255081416802539"),
            (cs.it_fiscal_code_valid, "RSSMRA85T10A562S", "RSSMRA85T10A562T"),
            (cs.es_nif_valid, "12345678Z", "12345678A"),
            (cs.nl_bsn_valid, "111222333", "111222334"),
            (cs.pl_pesel_valid, "44051401359", "44051401358"),
            (cs.us_ssn_valid, "536221847", "666221847"),
            (lambda v: cs.eu_vat_check(v) is True, "DE136695976", "DE136695977"),
        ],
    )
    def test_check_digits(self, fn, good: str, bad: str) -> None:
        """Each algorithm accepts a published valid example and rejects a one-digit change."""
        assert fn(good)
        assert not fn(bad)


def test_hex_digests_are_not_ibans() -> None:
    """Compact tokens longer than their country's IBAN (e.g. hex digests) are not taken for IBANs."""
    import hashlib

    from processors.recognizers.iban import SovtelIbanRecognizer

    rec = SovtelIbanRecognizer()
    assert rec.validate_result("DE89370400440532013000")
    assert not rec.validate_result("de89370400440532013000" + "a" * 10)
    digests = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(20_000)]
    assert not [d for d in digests if rec.validate_result(d)]


@pytest.mark.parametrize("span_id", ["be5067df41a78e16", "be21ef9be5e6d09e"])
def test_hex_span_ids_are_not_ibans(span_id: str) -> None:
    """A 16-hex-digit span id shaped like a Belgian IBAN is not one: Belgium's account part is digits only."""
    assert SCANNER.scan(f"span {span_id} failed") == []


def test_random_hex_ids_of_iban_length_are_not_ibans() -> None:
    """Random 16-hex-digit ids (OTLP span ids) never pass for IBANs of a numeric-account country."""
    import random

    rng = random.Random(7)
    ids = [f"be{rng.randrange(100):02d}{rng.getrandbits(48):012x}" for _ in range(20_000)]
    assert [i for i in ids if not i[4:].isdigit() and SCANNER.scan(i)] == []
    assert SCANNER.scan("IBAN BE68539007547034")[0].entity == "IBAN_CODE"
