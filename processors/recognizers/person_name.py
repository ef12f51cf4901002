"""Person names found by patterns: a known given name with a surname, or a name after an
introduction, salutation or title in one of the supported languages."""

from __future__ import annotations

from functools import cache
from importlib import resources

import regex

from processors.recognizers.base import SovtelRecognizer

# Surname particles that may sit between given name and surname (van der Berg, de la Cruz).
# Capitalised too: Italian, French and Belgian names write them so (De Luca, Le Goff, Van Damme).
PARTICLES = (
    r"(?:[vV]an|[vV]on|[dD]e|[dD]er|[dD]en|[dD]el|[dD]ella|[dD]ei|[dD]i|[dD]a|[dD]as|[dD]os|[dD]u"
    r"|[lL]a|[lL]e|[tT]en|[tT]er|[zZ]u|y|'t)"
)
_SURNAME = r"\p{Lu}[\p{L}'\u2019]*\p{L}(?:-\p{Lu}[\p{L}'\u2019]*\p{L})?"
_FOLLOWING = rf"(?:[ \u00a0]+(?:{PARTICLES}[ \u00a0]+){{0,3}}{_SURNAME})"


def _word_list(filename: str) -> tuple[str, ...]:
    text = resources.files("processors.recognizers").joinpath(filename).read_text(encoding="utf-8")
    words = [w for line in text.splitlines() if not line.startswith("#") for w in line.split()]
    return tuple(dict.fromkeys(words))


# Capitalised words that are not names: function words, greetings, weekdays, sentence openers in
# the supported languages. Names never consist of them; skipping them keeps NER off most text.
STOPWORDS: frozenset[str] = frozenset(_word_list("stopwords.txt"))

# Words after which a capitalised word is a name: introductions, titles, salutations, sign-offs, roles.
INTRODUCTIONS: tuple[str, ...] = (
    "my name is", "i am", "i'm", "this is", "dear", "mr", "mrs", "ms", "miss", "dr", "prof", "patient",
    "ich heiße", "ich heisse", "mein name ist", "ich bin", "herr", "herrn", "frau", "liebe", "lieber",
    "sehr geehrte", "sehr geehrter", "patientin",
    "je m'appelle", "je suis", "mon nom est", "monsieur", "madame", "mademoiselle", "m", "mme", "mlle", "cher", "chère",
    "mi chiamo", "il mio nome è", "sono", "signor", "signore", "signora", "sig", "sig.ra", "dott", "dottor",
    "dottoressa", "caro", "cara", "gentile", "paziente",
    "me llamo", "mi nombre es", "soy", "señor", "señora", "sr", "sra", "don", "doña", "estimado", "estimada",
    "querido", "querida", "paciente",
    "mijn naam is", "ik ben", "ik heet", "meneer", "mevrouw", "dhr", "mevr", "beste", "geachte", "patiënt",
    "nazywam się", "mam na imię", "jestem", "pan", "pani", "panie", "szanowny", "szanowna", "drogi", "droga",
    "pacjent", "pacjentka",
    "thanks", "thank you", "regards", "best regards", "kind regards", "cheers", "sincerely", "viele grüße", "grüße",
    "gruß", "danke", "mit freundlichen grüßen", "cordialement", "bien à vous", "merci", "saluti", "cordiali saluti",
    "grazie", "saludos", "un saludo", "gracias", "atentamente", "groet", "groeten", "met vriendelijke groet",
    "bedankt", "pozdrawiam", "z poważaniem", "dziękuję",
    "user", "customer", "client", "benutzer", "nutzer", "kunde", "kundin", "utilisateur", "utente", "cliente",
    "usuario", "gebruiker", "klant", "użytkownik", "klient", "account holder", "holder", "inhaber", "inhaberin",
    "titulaire", "intestato a", "intestataria", "titular", "houder", "rekeninghouder", "właściciel", "właścicielka",
)  # fmt: skip

# Prepositions and verbs of addressing after which two or more capitalised words are a name
# ("a reply to Imogen Clarke", "Absage an Detlef Bauer", "contacter Gaspard Faure").
ADDRESSING: tuple[str, ...] = (
    "to", "from", "with", "for", "by", "cc", "an", "von", "mit", "für", "à", "de", "avec", "pour", "par", "a", "da",
    "di", "con", "per", "para", "aan", "van", "met", "voor", "door", "do", "od", "z", "dla",
    "contact", "call", "email", "ask", "tell", "inform", "notify", "remind", "thank", "kontaktieren", "anrufen",
    "informieren", "contacter", "appeler", "prévenir", "contattare", "chiamare", "avvisare", "contactar", "llamar",
    "avisar", "bellen", "mailen", "informeren", "skontaktuj", "zadzwoń", "powiadom",
)  # fmt: skip


Trie = dict[str, "Trie"]


def _trie_regex(words: list[str]) -> str:
    """A compact alternation for many literal words (a character trie), fast for the regex engine."""
    trie: Trie = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def render(node: Trie) -> str:
        ends = "" in node
        branches = [regex.escape(ch) + render(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body

    return "(?:" + render(trie) + ")"


@cache
def given_names() -> tuple[str, ...]:
    """The given names of the gazetteer, from the packaged list."""
    return _word_list("first_names.txt")


@cache
def surnames() -> tuple[str, ...]:
    """The surnames of the gazetteer (particles stripped), from the packaged list."""
    return _word_list("surnames.txt")


def _alternation(words: tuple[str, ...]) -> str:
    return "|".join(regex.escape(w) for w in sorted(words, key=len, reverse=True))


_GIVEN = _trie_regex(list(given_names()))
_FAMILY = _trie_regex(list(surnames()))
_INTRO = _alternation(INTRODUCTIONS)
_ADDRESSING = _alternation(ADDRESSING)
# A capitalised word that is not a function word, greeting or weekday (see person_ner.STOPWORDS).
_WORD = (
    rf"(?!{_trie_regex(sorted(STOPWORDS))}(?![\p{{L}}'\u2019-]))"
    r"\p{Lu}\p{Ll}+(?:\p{Lu}\p{Ll}+)?(?:[-'\u2019]\p{Lu}?\p{Ll}+)?"
)


class SovtelPersonNameRecognizer(SovtelRecognizer):
    """Known given name + surname(s); a known given name alone next to a salutation; any
    capitalised name after an introduction or title (``Herr Nowak``, ``je m'appelle Inès``)."""

    ENTITY = "PERSON"
    CONTEXT = (
        "name", "dear", "hello", "hi", "hallo", "liebe", "lieber", "bonjour", "salut", "ciao", "buongiorno", "hola",
        "beste", "hoi", "cześć", "dzień dobry", "thanks", "danke", "merci", "grazie", "gracias", "bedankt", "dziękuję",
        "patient", "kunde", "client", "cliente", "klant", "klient", "user", "nutzer", "her", "his", "she", "he", "him",
        "sie", "ihr", "ihre", "elle", "lui", "lei", "ella", "zij", "hij", "haar", "jej", "jego", "regards", "signed",
    )  # fmt: skip
    # Case-sensitive on purpose (the default flags): "Anna" is a name, "anna" rarely one in telemetry.
    PATTERNS = (
        ("given name and surname", rf"(?<![\w@.-]){_GIVEN}{_FOLLOWING}{{1,2}}(?![\w@-])", 0.7),
        (
            "name and known surname",
            rf"(?<![\w@.-]){_WORD}(?:[ \u00a0]+{_WORD})?[ \u00a0]+(?:{PARTICLES}[ \u00a0]+){{0,3}}"
            rf"{_FAMILY}(?![\p{{L}}\w@-])",
            0.65,
        ),
        ("given name", rf"(?<![\w@.-]){_GIVEN}(?![\w@-])", 0.4),
        (
            "after introduction",
            rf"(?<=(?i:(?<![\w])(?:{_INTRO}))\.?[,:]?[ \u00a0]+){_WORD}{_FOLLOWING}{{0,2}}(?![\w@-])",
            0.65,
        ),
        (
            "two capitalised words after addressing",
            rf"(?<=(?i:(?<![\w])(?:{_ADDRESSING}))[ \u00a0]+){_WORD}"
            rf"(?:[ \u00a0]+(?:{PARTICLES}[ \u00a0]+){{0,3}}{_WORD}){{1,2}}(?![\w@-])",
            0.55,
        ),
        # A whole line of two to four capitalised words (a signature, a "name" field); needs context.
        ("name line", rf"^[ \t]*{_WORD}(?:[ \u00a0]+(?:{PARTICLES}[ \u00a0]+){{0,3}}{_WORD}){{1,3}}[ \t]*$", 0.3),
    )
    TRIGGER = r"\p{Lu}\p{Ll}"
