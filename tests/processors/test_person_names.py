"""Person names in the forms real text writes them: alone after greetings and sign-offs, in lower case,
hyphenated, with particles; and capitalised nouns of other languages left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from processors import pii
from processors.recognizers.person_name import (
    SovtelPersonNameRecognizer,
    given_names,
    lexicon,
    name_words,
    surnames,
)

ROOT = Path(__file__).resolve().parents[2]

# (text, the name that must be masked whole): greeting, sign-off, addressing, introduction forms.
POSITIVES = [
    ("Hi Maria, the job failed again.", "Maria"),
    ("ok, thanks, Jan", "Jan"),
    ("Grüße, Jan", "Jan"),
    ("Merci, Marie", "Marie"),
    ("Cheers — Tom", "Tom"),
    ("Ask Jan about the quota.", "Jan"),
    ("Best regards,\nKelsey", "Kelsey"),
    ("Hallo Wiebke,\nder Export läuft.", "Wiebke"),
    ("my name is jean dupont and I need a refund", "jean dupont"),
    ("ich heiße anna schmidt", "anna schmidt"),
    ("je m'appelle marie dubois", "marie dubois"),
    ("hi maria, can you check?", "maria"),
    ("the ticket was opened by jean dupont yesterday", "jean dupont"),
    ("François-Xavier Dupont will join the call.", "François-Xavier Dupont"),
    ("Please forward it to Anne-Marie Lefebvre.", "Anne-Marie Lefebvre"),
    ("Sehr geehrter Herr van der Berg,", "van der Berg"),
    ("Das Ticket wurde von Jan van der Berg aktualisiert.", "Jan van der Berg"),
    ("El ticket fue actualizado por María de la Cruz.", "María de la Cruz"),
    ("Richard von Weizsäcker will join the call.", "Richard von Weizsäcker"),
    ("Il ticket è stato aggiornato da Marco di Marco.", "Marco di Marco"),
    ("Sean O'Brien will join the call at ten.", "Sean O'Brien"),
    ("April Smith opened the ticket.", "April Smith"),
    ("Il conto è intestato a Mario Rossi.", "Mario Rossi"),
    ("je suis de la Fontaine, merci", "de la Fontaine"),
    ("Signed by\nImogen Whitcombe-Hale\n", "Imogen Whitcombe-Hale"),
    ("Hallo Frau Ostrowski!", "Ostrowski"),
    ("I spoke to jean dupont about it", "jean dupont"),
]

# Text in which no person is named: capitalised nouns, sentence openers, lower-case prose.
NEGATIVES = [
    "Mit freundlichen Grüßen",
    "Bitte bringen Sie Ihren Personalausweis mit.",
    "Ustaw limit na 10 zapytań.",
    "Der Mann stand am Berg und sah das Meer.",
    "Im Sommer fährt der Zug seltener.",
    "set max length to 512 and retry",
    "my name is not important here",
    "Hello World, this is a test.",
    "Meta Llama 3.1 pre-training corpus (public web, licensed data); no customer data.",
]


@pytest.mark.parametrize(("text", "name"), POSITIVES, ids=[p[0][:40] for p in POSITIVES])
def test_masks_the_whole_name(masker: pii.Masker, text: str, name: str) -> None:
    """Each form of a name is masked, no word of it left behind."""
    out = masker.mask_values([text])[0].text
    assert "<PERSON:" in out, out
    for word in name.replace("-", " ").split():
        if word.lower() not in {"van", "der", "de", "la", "von", "di"}:
            assert word not in out, out


@pytest.mark.parametrize("text", NEGATIVES)
def test_leaves_nouns_and_prose(masker: pii.Masker, text: str) -> None:
    """Capitalised nouns, sentence openers and lower-case prose are not taken for names."""
    assert masker.mask_values([text])[0].counts.get("PERSON", 0) == 0, masker.mask_values([text])[0].text


def test_name_lists_are_loaded_and_consistent() -> None:
    """The packaged lists are large, and names that are also common words are kept out of the lexicon."""
    assert len(given_names()) > 3000 and len(surnames()) > 5000
    assert {"Maria", "Jan", "Kelsey", "Wiebke"} <= set(given_names())
    assert "Berg" in name_words() and "Berg" not in lexicon()
    assert "Claude" not in lexicon()


def test_name_lists_stay_out_of_the_regexes() -> None:
    """The patterns are name shapes; the thousands of listed names are looked up as sets, never compiled."""
    patterns = [p.regex for p in SovtelPersonNameRecognizer().patterns]
    assert sum(len(p) for p in patterns) < 10_000
    for name in ("Wiebke", "Kelsey", "Dupont", "Kowalski"):
        assert not any(name in p or name.lower() in p for p in patterns), name


def test_name_lists_load_on_first_use_only() -> None:
    """Importing and building the recognizer reads no name list; the first scan reads them once."""
    code = (
        "from processors.recognizers import person_name as p\n"
        "from processors.recognizers.scan import Scanner\n"
        "s = Scanner([p.SovtelPersonNameRecognizer()])\n"
        "print(p._lists.cache_info().currsize, p.given_names.cache_info().currsize)\n"
        "s.scan('Hi Maria, my name is jean dupont.'); s.scan('ask Jan')\n"
        "print(p._lists.cache_info().currsize, p._lists.cache_info().misses)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, cwd=ROOT
    )
    assert out.stdout.split("\n")[:2] == ["0 0", "1 1"], out.stdout + out.stderr
