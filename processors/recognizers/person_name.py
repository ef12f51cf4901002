"""Person names found by patterns: a known given name with a surname, a known given name or a
capitalised word after a greeting, sign-off, introduction or title, and names written in lower case
where a context or the name lists say a name is there, in every supported language.

The name lists are data written by others (``names_given.txt``, ``names_family.txt``: Faker's locale
providers, MIT; regenerate them with ``make_name_lists.py``) joined with our own shorter lists.
Names that are also common words (``names_words.txt``) count as names only with a context or a second
name word. Hyphenated (``Anne-Marie``), apostrophe (``O'Brien``) and particle names (``van der Berg``,
``de la Cruz``) are matched whole, so no part of a name is left behind.

The regexes describe name shapes only (runs of capitalised words, lower-case words after a cue);
which shape is a name the lists decide, looked up as frozensets read once per process on first use.
Compiled into regex alternations, lists of thousands of names cost seconds of start-up in every
process and several times the scan cost; set lookups cost neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

import regex

from processors.recognizers.base import DEFAULT_FLAGS, SovtelRecognizer

# Surname particles that may sit between given name and surname (van der Berg, de la Cruz).
# Capitalised too: Italian, French and Belgian names write them so (De Luca, Le Goff, Van Damme).
PARTICLES = (
    r"(?:[vV]an|[vV]on|[dD]e|[dD]er|[dD]en|[dD]el|[dD]ella|[dD]ei|[dD]i|[dD]a|[dD]as|[dD]os|[dD]u"
    r"|[lL]a|[lL]e|[tT]en|[tT]er|[zZ]u|y|'t)"
)
_LOWER_PARTICLES = r"(?:van|von|de|der|den|del|della|dei|di|da|das|dos|du|la|le|ten|ter|zu|y)"
# One word of a name: Title case, inner capitals (McDonald, DiMaggio), an apostrophe prefix (O'Brien,
# D'Angelo), hyphenated parts (Anne-Marie, Hamilton-O'Sullivan).
_PART = r"\p{Lu}(?:\p{Ll}+(?:\p{Lu}\p{Ll}+)?|['\u2019]\p{Lu}\p{Ll}+)"
NAME_WORD = rf"{_PART}(?:-{_PART})*"
# The gap between a cue (greeting, sign-off, introduction) and the name: punctuation, a dash, spaces
# or one line break ("Best regards,\nJan", "Cheers — Tom").
_GAP = r"\.?[,:;!]?(?:[ \u00a0]*[\u2014\u2013-])?(?:[ \t\u00a0]*\r?\n[ \t\u00a0]*|[ \t\u00a0]+)"


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

# Greetings: a known given name or two name words between one and the end of its clause are the
# addressee ("Hi Maria,", "Hallo Frau Ostrowski,"); "Hello World," is not.
GREETINGS: tuple[str, ...] = (
    "hi", "hello", "hey", "good morning", "good afternoon", "hallo", "moin", "servus", "guten morgen", "guten tag",
    "bonjour", "bonsoir", "salut", "coucou", "hola", "buenos días", "buenas tardes", "ciao", "buongiorno",
    "buonasera", "salve", "hoi", "goedemorgen", "goedemiddag", "cześć", "witaj", "witam", "dzień dobry",
)  # fmt: skip

# Phrases after which whatever follows is a name, whatever its case ("my name is jean dupont").
NAME_FOLLOWS: tuple[str, ...] = (
    "my name is", "call me", "mein name ist", "ich heiße", "ich heisse", "je m'appelle", "mon nom est",
    "mi chiamo", "il mio nome è", "me llamo", "mi nombre es", "mijn naam is", "ik heet", "nazywam się",
    "mam na imię",
)  # fmt: skip

# Prepositions and verbs of addressing after which two or more capitalised words are a name
# ("a reply to Imogen Clarke", "Absage an Detlef Bauer", "contacter Gaspard Faure").
ADDRESSING: tuple[str, ...] = (
    "to", "from", "with", "for", "by", "cc", "an", "von", "mit", "für", "à", "de", "avec", "pour", "par", "a", "da",
    "di", "con", "per", "para", "por", "przez", "aan", "van", "met", "voor", "door", "do", "od", "z", "dla",
    "contact", "call", "email", "ask", "tell", "inform", "notify", "remind", "thank", "kontaktieren", "anrufen",
    "informieren", "contacter", "appeler", "prévenir", "contattare", "chiamare", "avvisare", "contactar", "llamar",
    "avisar", "bellen", "mailen", "informeren", "skontaktuj", "zadzwoń", "powiadom",
    "frag", "fragen", "demande à", "demandez à", "chiedi a", "pregunta a", "vraag", "zapytaj",
)  # fmt: skip


@cache
def given_names() -> tuple[str, ...]:
    """The given names of the gazetteer: our list and Faker's locale lists."""
    return tuple(dict.fromkeys(_word_list("first_names.txt") + _word_list("names_given.txt")))


@cache
def surnames() -> tuple[str, ...]:
    """The surnames of the gazetteer (particles stripped): our list and Faker's locale lists."""
    return tuple(dict.fromkeys(_word_list("surnames.txt") + _word_list("names_family.txt")))


@cache
def name_words() -> frozenset[str]:
    """Names that are also common words of a supported language (need a context or a second name)."""
    return frozenset(_word_list("names_words.txt")) | STOPWORDS


@cache
def function_words() -> frozenset[str]:
    """Lower-case function words (articles, pronouns, prepositions) of the supported languages."""
    return frozenset(_word_list("function_words.txt"))


@cache
def lexicon() -> frozenset[str]:
    """Every name word of the gazetteer, given names and surnames alike, that is not also a common
    word ("Berg", "Mann" and "Sommer" are surnames, but German nouns first)."""
    return (frozenset(given_names()) | frozenset(surnames())) - name_words()


@dataclass(frozen=True)
class _Lists:
    """The name lists as the sets the recognizer looks words up in (``l*``: written in lower case)."""

    given: frozenset[str]  # given names that are nothing else
    given_any: frozenset[str]  # every given name, also those that are common words ("Will", "Rose")
    given_words: frozenset[str]  # given names that are also common words
    family: frozenset[str]  # surnames that are nothing else
    family_words: frozenset[str]  # surnames that are also common words ("Koch", "Berg")
    lgiven: frozenset[str]
    lgiven_any: frozenset[str]
    lfamily: frozenset[str]


@cache
def _lists() -> _Lists:
    """Read once per process, on the first text that needs them: importing the module stays cheap."""
    ambiguous = name_words()
    given_any = frozenset(given_names())
    family_any = frozenset(surnames())
    given, family = given_any - ambiguous, family_any - ambiguous
    return _Lists(
        given=given,
        given_any=given_any,
        given_words=given_any & ambiguous,
        family=family,
        family_words=family_any & ambiguous,
        lgiven=frozenset(w.lower() for w in given),
        lgiven_any=frozenset(w.lower() for w in given_any),
        lfamily=frozenset(w.lower() for w in family),
    )


def _alternation(words: Iterable[str]) -> str:
    return "|".join(regex.escape(w) for w in sorted(words, key=len, reverse=True))


# The kind of a cue: what may follow it. A phrase inherits the kinds of the shorter phrases it ends
# with ("intestato a" is an introduction and ends with the addressing word "a"): the cue regex finds
# the longest phrase, and no reading of the text the separate lists allowed may be lost.
_INTRO, _GREET, _ADDR, _FOLLOWS = 1, 2, 4, 8
_ALL_KINDS = _INTRO | _GREET | _ADDR | _FOLLOWS


def _cue_kinds() -> dict[str, int]:
    kinds: dict[str, int] = {}
    for kind, phrases in ((_INTRO, INTRODUCTIONS), (_GREET, GREETINGS), (_ADDR, ADDRESSING), (_FOLLOWS, NAME_FOLLOWS)):
        for phrase in phrases:
            kinds[phrase] = kinds.get(phrase, 0) | kind
    for phrase in list(kinds):
        for other, kind in list(kinds.items()):
            if len(other) < len(phrase) and phrase.endswith(other) and not phrase[-len(other) - 1].isalnum():
                kinds[phrase] |= kind
    return kinds


_CUE_KINDS = _cue_kinds()
_SPACES = r"[ \u00a0]+"
_END = r"(?![\p{L}\w@-])"
# A cue right before a position: any greeting, introduction, sign-off, title or addressing word and
# the gap after it. The regex module matches a lookbehind at one position, so this costs one attempt.
_CUE = regex.compile(rf"(?<=(?i:(?<!\w)(?P<cue>{_alternation(_CUE_KINDS)}))(?P<gap>{_GAP}))")
# An introduction or title, then particles, before a capitalised word ("Herr van der Berg").
_CUE_PARTICLES = regex.compile(
    rf"(?<=(?i:(?<!\w)(?:{_alternation(INTRODUCTIONS)})){_GAP}(?P<p>(?:{PARTICLES}{_SPACES}){{1,3}}))"
)
_ONLY_SPACES = regex.compile(rf"{_SPACES}\Z")
# The end of a clause after a greeting's addressee ("Hi Maria," / "Hallo Frau Ostrowski!").
_CLAUSE_END = regex.compile(r"[ \t\u00a0]*(?:[,!:;.\r\n]|$)", regex.MULTILINE)
_LINE_END = regex.compile(r"[ \t]*(?:\n|\Z)")
_LINE_START = regex.compile(r"(?:^|(?<=\n))[ \t]*\Z")

# The name shapes. A run is every capitalised name word in a row, joined by spaces and particles;
# which part of it is a name the word lists decide, as set lookups (see ``_capitalised``).
_NAME_RUN = (
    rf"(?<![\w@.-])(?P<w>{NAME_WORD})(?![\w@-])"
    rf"(?:{_SPACES}(?:{PARTICLES}{_SPACES}){{0,3}}(?P<w>{NAME_WORD})(?![\w@-]))*"
)
# A word written in lower case, apostrophes and hyphen parts included (``jean``, ``d'angelo``, ``jean-luc``).
_LWORD = r"\p{Ll}[\p{Ll}'\u2019]*\p{Ll}(?:-\p{Ll}+)*"
_LSEP = rf"{_SPACES}(?:{_LOWER_PARTICLES}{_SPACES}){{0,3}}"
# "my name is" and its kin, then up to three lower-case words: whatever follows is a name.
_AFTER_NAME_FOLLOWS = (
    rf"(?i:(?<!\w)(?:{_alternation(NAME_FOLLOWS)})){_GAP}"
    rf"(?P<w>{_LWORD}){_END}(?:{_LSEP}(?P<w>{_LWORD}){_END}){{0,2}}"
)
# What may follow a lower-case given name: its hyphen part, then another lower-case word.
_LOWER_TAIL = rf"(?P<hy>-\p{{Ll}}+)?(?:{_LSEP}(?P<s>\p{{Ll}}[\p{{Ll}}'\u2019]*)(?P<sx>-\p{{Ll}}+)?)?"
_LOWER_PIECE = r"\p{Ll}+"

_RUN_RX = regex.compile(_NAME_RUN, DEFAULT_FLAGS)
_FOLLOWS_RX = regex.compile(_AFTER_NAME_FOLLOWS, DEFAULT_FLAGS)
_LOWER_TAIL_RX = regex.compile(_LOWER_TAIL, DEFAULT_FLAGS)
_LWORD_END_RX = regex.compile(_END)
_LOWER_PIECE_RX = regex.compile(_LOWER_PIECE)
_WORD_CHARS = regex.compile(r"[\w@.-]")
_UPPER_NEXT = regex.compile(r"[ \u00a0]+\p{Lu}")

Span = tuple[int, int, float]


def _hyphen_given(word: str, names: frozenset[str]) -> bool:
    """A given name, also as either half of a hyphenated one (Jean-Luc, Anne-Marie, Jodi-Kim)."""
    if word in names:
        return True
    parts = word.split("-")
    return len(parts) > 1 and (parts[0] in names or parts[1] in names)


def _surname_shape(word: str) -> bool:
    """A surname has at most two hyphen parts (Hamilton-O'Sullivan)."""
    return word.count("-") <= 1


class SovtelPersonNameRecognizer(SovtelRecognizer):
    """Known given name + surname(s); a known given name alone next to a salutation; any
    capitalised name after an introduction, greeting or title (``Herr Nowak``, ``je m'appelle Inès``);
    lower-case names after such a cue or made of two known name words (``jean dupont``).

    The patterns are name shapes; ``find_spans`` decides which shapes are names by looking their
    words up in the name lists (frozensets), so no list is compiled into a regex.
    """

    ENTITY = "PERSON"
    CONTEXT = (
        "name", "dear", "hello", "hi", "hey", "hallo", "liebe", "lieber", "bonjour", "salut", "ciao", "buongiorno",
        "hola", "beste", "hoi", "cześć", "dzień dobry", "thanks", "danke", "merci", "grazie", "gracias", "bedankt",
        "dziękuję", "cheers", "regards", "grüße", "gruß", "cordialement", "saluti", "saludos", "groet", "pozdrawiam",
        "ask", "tell", "frag", "demande", "chiedi", "pregunta", "vraag", "zapytaj", "call", "signed",
        "patient", "kunde", "client", "cliente", "klant", "klient", "user", "nutzer", "her", "his", "she", "he", "him",
        "sie", "ihr", "ihre", "elle", "lui", "lei", "ella", "zij", "hij", "haar", "jej", "jego",
    )  # fmt: skip
    # Case-sensitive on purpose (the default flags): "Anna" is a name, "anna" rarely one in telemetry;
    # lower-case names need a cue or two known name words.
    PATTERNS = (
        ("capitalised name words", _NAME_RUN, 0.7),
        ("lower case after introduction", _AFTER_NAME_FOLLOWS, 0.65),
        ("lower-case word", rf"(?<![\w@.-]){_LOWER_PIECE}{_LOWER_TAIL}", 0.55),
    )
    # Any word pair: lower-case names have no capital to trigger on.
    TRIGGER = r"\p{L}\p{Ll}"

    def find_spans(self, text: str) -> list[Span] | None:
        """Name spans with their base scores: capitalised runs, lower case after a cue, lower-case pairs."""
        lists = _lists()
        found: list[Span] = []
        for m in _RUN_RX.finditer(text):
            _capitalised(text, m.spans("w"), lists, found)
        for m in _FOLLOWS_RX.finditer(text):
            _after_name_follows(m.spans("w"), m.captures("w"), found)
        _lower_case(text, lists, found)
        return found


def _cue_before(text: str, pos: int) -> tuple[int, str]:
    """The kinds of cue right before ``pos`` (0: none) and the gap between cue and position."""
    m = _CUE.match(text, pos)
    if m is None:
        return 0, ""
    return _CUE_KINDS.get(m.group("cue").lower(), _ALL_KINDS), m.group("gap")


def _capitalised(text: str, spans: list[tuple[int, int]], lists: _Lists, found: list[Span]) -> None:
    """Every name a run of capitalised words holds, as the pattern shapes of the module docstring:
    a known given name and surnames, a name and a known surname, a name after a cue, a name line."""
    words = [text[s:e] for s, e in spans]
    stop = STOPWORDS
    n = len(words)
    for i, word in enumerate(words):
        start = spans[i][0]
        plain = word not in stop
        # How many of the next two words may be surnames (not stopwords, at most two hyphen parts).
        k = 0
        while k < 2 and i + k + 1 < n and words[i + k + 1] not in stop and _surname_shape(words[i + k + 1]):
            k += 1
        given_any = _hyphen_given(word, lists.given_any)
        if k and _hyphen_given(word, lists.given):
            found.append((start, spans[i + k][1], 0.7))
        if i + 1 < n:
            _known_surname(text, spans, words, i, lists, found)
        if given_any:
            found.append((start, spans[i][1], 0.4))
        if not plain and not given_any:
            continue
        # Cues: only a word that is not a stopword (or is a given name) can follow one as a name.
        kinds, gap = _cue_before(text, start)
        if kinds & _INTRO and plain:
            found.append((start, spans[i + k][1], 0.65))
        after_particles = text[spans[i - 1][1] : start].strip() if i else start > 0 and text[start - 1] in " \u00a0"
        if plain and after_particles:
            p = _CUE_PARTICLES.match(text, start)
            if p is not None:
                found.append((p.start("p"), spans[i + k][1], 0.65))
        if kinds & _GREET:
            _after_greeting(text, spans, words, i, given_any, plain, found)
        if kinds & _ADDR and plain and _ONLY_SPACES.match(gap):
            j = 0
            while j < 2 and i + j + 1 < n and words[i + j + 1] not in stop:
                j += 1
            if j:
                found.append((start, spans[i + j][1], 0.55))
    # A whole line of two to four capitalised words (a signature, a "name" field); needs context.
    if (
        2 <= n <= 4
        and not any(w in stop for w in words)
        and _LINE_START.search(text, max(0, spans[0][0] - 80), spans[0][0])
        and _LINE_END.match(text, spans[-1][1])
    ):
        found.append((spans[0][0], spans[-1][1], 0.3))


def _known_surname(
    text: str, spans: list[tuple[int, int]], words: list[str], i: int, lists: _Lists, found: list[Span]
) -> None:
    """One or two name words before a known surname ("Imogen Clarke", "Anna Maria Kowalski"), and
    two known name words where one is also a common word ("April Smith", "Jan Koch")."""
    stop = STOPWORDS
    word = words[i]
    for j in (i + 2, i + 1):
        if word in stop or j >= len(words) or not _surname_shape(words[j]):
            continue
        # The two name words before a surname stand side by side, no particle between them.
        if j == i + 2 and (words[i + 1] in stop or text[spans[i][1] : spans[i + 1][0]].strip()):
            continue
        if words[j].split("-", 1)[0] in lists.family:
            found.append((spans[i][0], spans[j][1], 0.65))
            break
    nxt = words[i + 1]
    if _surname_shape(nxt):
        head = nxt.split("-", 1)[0]
        if (_hyphen_given(word, lists.given_any) and head in lists.family_words) or (
            word in lists.given_words and head in lists.family
        ):
            found.append((spans[i][0], spans[i + 1][1], 0.6))


def _after_greeting(
    text: str, spans: list[tuple[int, int]], words: list[str], i: int, given_any: bool, plain: bool, found: list[Span]
) -> None:
    """After a greeting, a known given name or two name words up to the end of the clause."""
    if not given_any and not (plain and _UPPER_NEXT.match(text, spans[i][1])):
        return  # one word alone after a greeting must be a known given name ("Hello World," is not)
    for j in range(min(i + 2, len(words) - 1), i - 1 if given_any else i, -1):
        if _CLAUSE_END.match(text, spans[j][1]):
            found.append((spans[i][0], spans[j][1], 0.65))
            return


def _after_name_follows(spans: list[tuple[int, int]], words: list[str], found: list[Span]) -> None:
    """After "my name is" and its kin: the lower-case words up to the first function word."""
    function = function_words()
    k = 0
    while k < len(words) and words[k] not in function:
        k += 1
    if k:
        found.append((spans[0][0], spans[k - 1][1], 0.65))


def _lower_case(text: str, lists: _Lists, found: list[Span]) -> None:
    """Known given names written in lower case: after a cue (with the next word as surname), or
    followed by a known surname ("jean dupont"). Set intersections pick the few words to look at."""
    pieces = set(_LOWER_PIECE_RX.findall(text))
    candidates = lists.lgiven_any.intersection(pieces)
    if not candidates:
        return
    function = function_words()
    for name in candidates:
        plain = name in lists.lgiven
        pos = text.find(name)
        while pos >= 0:
            end = pos + len(name)
            if (pos == 0 or not _WORD_CHARS.match(text[pos - 1])) and (end == len(text) or not text[end].isalpha()):
                tail = _LOWER_TAIL_RX.match(text, end)
                _lower_name(text, pos, tail, plain, lists, function, found)
            pos = text.find(name, end)


def _lower_name(
    text: str,
    pos: int,
    tail: regex.Match[str],
    plain: bool,
    lists: _Lists,
    function: frozenset[str],
    found: list[Span],
) -> None:
    """One lower-case given name at ``pos``: followed by a known surname, or after a cue."""
    given_end = tail.end("hy") if tail.group("hy") else tail.start()
    surname = tail.group("s")
    surname_end = tail.end("sx") if tail.group("sx") else tail.end("s")
    surname_ends = surname is not None and _LWORD_END_RX.match(text, surname_end) is not None
    if plain and surname is not None:
        # "o'brien" is a surname; "dupont's" is "dupont" and a suffix.
        known = surname if surname in lists.lfamily else regex.split(r"['\u2019]", surname, maxsplit=1)[0]
        if known in lists.lfamily:
            if known != surname:
                found.append((pos, tail.start("s") + len(known), 0.55))
            elif surname_ends:
                found.append((pos, surname_end, 0.55))
    kinds, _gap = _cue_before(text, pos)
    if not kinds & (_INTRO | _GREET | _ADDR):
        return
    if surname_ends and len(surname) > 1 and surname[-1].isalpha() and surname not in function:
        found.append((pos, surname_end, 0.65))
    elif _LWORD_END_RX.match(text, given_end):
        found.append((pos, given_end, 0.65))
