"""Postal addresses: street and house number in each supported language's order, with an optional
unit and postcode + city, and a postcode + city (or US city, state, ZIP) on their own.

The street types per language are class data; a street is a type word (``rue``, ``Via``, ``ul.``),
a name glued to a type (``Hauptstraße``, ``Kerkstraat``) or a name followed by a type (``Main
St``), always next to a house number or a postcode, so that a lone capitalised word never counts.
"""

from __future__ import annotations

import regex

from processors.recognizers.base import SovtelRecognizer

# USPS street suffixes (Publication 28, C1) with their abbreviations, and common British ones.
EN_SUFFIXES = (
    "Alley", "Aly", "Annex", "Arcade", "Avenue", "Ave", "Av", "Bayou", "Beach", "Bend", "Bluff", "Bluffs", "Bottom",
    "Boulevard", "Blvd", "Branch", "Bridge", "Brook", "Brooks", "Burg", "Burgs", "Bypass", "Camp", "Canyon", "Cape",
    "Causeway", "Center", "Centre", "Centers", "Circle", "Cir", "Circles", "Cliff", "Cliffs", "Club", "Common",
    "Commons", "Corner", "Corners", "Course", "Court", "Ct", "Courts", "Cove", "Coves", "Creek", "Crescent",
    "Crest", "Crossing", "Crossroad", "Curve", "Dale", "Dam", "Divide", "Drive", "Dr", "Drives", "Estate",
    "Estates", "Expressway", "Expy", "Extension", "Ext", "Extensions", "Fall", "Falls", "Ferry", "Field", "Fields",
    "Flat", "Flats", "Ford", "Fords", "Forest", "Forge", "Forges", "Fork", "Forks", "Fort", "Freeway", "Fwy",
    "Garden", "Gardens", "Gateway", "Glen", "Glens", "Green", "Greens", "Grove", "Groves", "Harbor", "Harbors",
    "Haven", "Heights", "Hts", "Highway", "Hwy", "Hill", "Hills", "Hollow", "Inlet", "Island", "Islands", "Isle",
    "Junction", "Junctions", "Key", "Keys", "Knoll", "Knolls", "Lake", "Lakes", "Landing", "Lane", "Ln",
    "Light", "Lights", "Loaf", "Lock", "Locks", "Lodge", "Loop", "Mall", "Manor", "Manors", "Meadow", "Meadows",
    "Mews", "Mill", "Mills", "Mission", "Motorway", "Mount", "Mountain", "Mountains", "Neck", "Orchard", "Oval",
    "Overpass", "Park", "Parks", "Parkway", "Pkwy", "Parkways", "Pass", "Passage", "Path", "Pike", "Pine", "Pines",
    "Place", "Pl", "Plain", "Plains", "Plaza", "Point", "Points", "Port", "Ports", "Prairie", "Radial", "Ramp",
    "Ranch", "Rapid", "Rapids", "Rest", "Ridge", "Ridges", "River", "Road", "Rd", "Roads", "Route", "Row", "Rue",
    "Run", "Shoal", "Shoals", "Shore", "Shores", "Skyway", "Spring", "Springs", "Spur", "Spurs", "Square", "Sq",
    "Squares", "Station", "Stravenue", "Stream", "Street", "St", "Streets", "Summit", "Terrace", "Ter", "Throughway",
    "Trace", "Track", "Trafficway", "Trail", "Trl", "Trailer", "Tunnel", "Turnpike", "Underpass", "Union", "Unions",
    "Valley", "Valleys", "Via", "Viaduct", "View", "Views", "Village", "Villages", "Ville", "Vista", "Walk", "Walks",
    "Wall", "Way", "Ways", "Well", "Wells", "Close", "Cottages", "Parade", "Rise", "Vale", "Wharf", "Yard", "Gate",
    "Mead", "Villas", "Circus", "Drove", "Wynd", "Hey",
)  # fmt: skip
# Types glued to the end of a German or Dutch street name ("Hauptstraße", "Kerkstraat"), or joined
# by a hyphen ("Gerd-Weihmann-Weg"); matched without regard to case.
GLUED_SUFFIXES = (
    "straße", "strasse", "str.", "gasse", "weg", "allee", "platz", "damm", "ufer", "chaussee", "steig", "stieg",
    "pfad", "promenade", "graben", "-ring", "-hof", "-markt", "-berg", "-park",
    "straat", "laan", "plein", "gracht", "kade", "singel", "dijk", "pad", "baan", "dreef", "steeg", "plantsoen",
    "wal", "markt", "hof", "park", "erf", "veld", "hoven", "boulevard",
)  # fmt: skip
# Type words written before the name, per language (case-insensitive).
LEADING_TYPES = (
    # French
    "rue", "avenue", "av.", "boulevard", "bd", "bld", "chemin", "impasse", "allée", "allee", "place", "quai",
    "route", "cours", "passage", "square", "voie", "rond-point", "sentier", "faubourg", "promenade", "esplanade",
    "villa", "cité", "hameau", "résidence", "parvis", "montée", "ruelle", "lieu-dit", "chaussée",
    # Spanish
    "calle", "c/", "c.", "avenida", "avda.", "avda", "paseo", "plaza", "pza.", "camino", "carretera", "ctra.",
    "ronda", "travesía", "travesia", "pasaje", "alameda", "cañada", "glorieta", "vía", "rambla", "callejón",
    "urbanización", "acceso", "cuesta", "partida", "vial", "polígono", "barrio", "bajada", "subida", "costanilla",
    "pasadizo",
    # Italian
    "via", "viale", "piazza", "piazzale", "piazzetta", "corso", "largo", "vicolo", "strada", "contrada", "rotonda",
    "incrocio", "borgo", "lungomare", "lungotevere", "vico", "salita", "traversa", "località", "loc.", "canale",
    "stretto", "viottolo", "fondamenta", "galleria", "circonvallazione", "frazione",
    # Polish
    "ul.", "ulica", "al.", "aleja", "pl.", "plac", "os.", "osiedle", "rondo", "skwer", "bulwar", "wybrzeże",
)  # fmt: skip
# German separate-word forms, matched as written (capitalised), so "in der" in a sentence is not one.
DE_LEADING_TYPES = ("Am", "An der", "An den", "Auf der", "Auf dem", "Im", "In der", "Unter den", "Zum", "Zur")
# Name particles inside street names: "rue de la Paix", "Calle del Carmen", "Via dei Mille".
PARTICLES = (
    "de la", "de l'", "de los", "de las", "del", "de", "des", "du", "d'", "la", "le", "les", "l'", "dei", "degli",
    "della", "delle", "dello", "di", "da", "van", "von", "der", "den", "het", "'t", "y", "e",
)  # fmt: skip
US_STATES = (
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
    "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR",
    "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP",
    "AA", "AE", "AP",
)  # fmt: skip
# Units after the street: "Apt. 488", "Suite 5", "Flat 2", "Piano 6", "Puerta 7", "m. 4", "3º B".
UNITS = (
    "Apt.", "Apt", "Apartment", "Suite", "Ste.", "Ste", "Unit", "Flat", "Floor", "Fl.", "Room", "Rm.", "#", "Piso",
    "Puerta", "Escalera", "Esc.", "Planta", "Piano", "Scala", "Interno", "Int.", "App.", "Appartamento", "Bâtiment",
    "Bât.", "Étage", "Etage", "Wohnung", "Whg.", "m.", "lok.", "bus",
)  # fmt: skip


def _alt(words: tuple[str, ...]) -> str:
    """A regex matching any of ``words`` literally, written as a prefix tree so that the engine
    dispatches on the next character instead of trying every word at every position."""
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _trie_regex(trie)


def _trie_regex(node: dict[str, dict]) -> str:  # type: ignore[type-arg]
    optional = "" in node
    branches = [
        ("['’]" if ch == "'" else regex.escape(ch)) + _trie_regex(child) for ch, child in sorted(node.items()) if ch
    ]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if optional:
        # Greedy: the longer word is tried first ("Streets" before "St"), the shorter on backtrack.
        return "(?:" + body + ")?" if len(branches) == 1 else body + "?"
    return body


_NAME = r"\p{Lu}[\p{L}'’]*+(?:-\p{L}[\p{L}'’]*+)*+"
_PARTICLE = r"(?i:" + _alt(PARTICLES) + r")"
_NAME_RUN = rf"(?:{_PARTICLE}\s?)?(?:\d{{1,2}}\s)?{_NAME}(?:[ ](?:{_PARTICLE}\s?)?(?:\d{{1,2}}[ ])?{_NAME}){{0,3}}"
# A house number: not a year, optionally with a letter, a range or a "/" flat number.
_NUMBER = r"(?!(?:19|20)\d\d(?!\d))\d{1,5}(?:\s?[a-zA-Z](?![\w]))?(?:\s?[/-]\s?\d{1,4}[a-zA-Z]?)?"
_UNIT = rf"(?:,?[ ](?:{_alt(UNITS)})[ ]?\d{{0,4}}[A-Za-z]?\d{{0,3}}(?!\w)|,?[ ]\d{{1,2}}º(?:[ ]?[A-Z](?!\w))?)"
_CITY = rf"{_NAME}(?:[ ](?:(?i:am|an der|sur|sous|en|le|la|les|de|di|del|am|im|aan|den|op|upon)[ ])?{_NAME}){{0,3}}"
_STATE = _alt(US_STATES)
_GB_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2}"
# Postcode and city in each order the supported countries write them.
_TAIL = (
    rf"(?:[ ]?,?[ ](?:"
    rf"(?:\d{{5}}|\d{{4}}[ ]?[A-Z]{{2}}|\d{{2}}-\d{{3}}|\d{{4}}),?[ ]{_CITY}(?:[ ]\([A-Z]{{2}}\))?"  # 75002 Paris
    # Granada, 18001 / Austin, TX 78701
    rf"|{_CITY},[ ](?:\d{{5}}|{_STATE}[ ]\d{{5}}(?:-\d{{4}})?|{_GB_POSTCODE})(?!\w)"
    rf"|{_CITY},?[ ]{_GB_POSTCODE}(?!\w)"  # London SW1A 1AA
    rf"))"
)
_END = r"(?![\w-])"


class SovtelStreetAddressRecognizer(SovtelRecognizer):
    """A street with its house number (or with a postcode when the number is missing), in English,
    German, Dutch, French, Spanish, Italian or Polish order, and postcode + city or city, state ZIP."""

    ENTITY = "STREET_ADDRESS"
    PATTERNS = (
        # 1600 Pennsylvania Avenue NW, Apt. 4, Washington, DC 20500 / 70 Iain Courts, Leeds LS1 4AP
        (
            "number street suffix",
            rf"(?<![\w.,/-])(?:(?:Flat|Studio|Apartment|Unit)[ ]\w{{1,4}},[ ])?{_NUMBER},?[ ](?:[NSEW]\.?[ ])?"
            rf"(?:{_NAME}[ ]){{1,3}}{_alt(EN_SUFFIXES)}\.?(?:[ ](?:N|S|E|W|NE|NW|SE|SW)\.?)?(?![\w-]){_UNIT}?{_TAIL}?",
            0.75,
        ),
        # Martyn Landing, Leeds, LS1 4AP: no house number, so the postcode is required...
        (
            "street suffix postcode",
            rf"(?<![\w.,/-])(?:{_NAME}[ ]){{1,3}}{_alt(EN_SUFFIXES)}(?![\w-]){_UNIT}?{_TAIL}",
            0.75,
        ),
        # ... or the flat before it (Flat 3, Martyn Landing).
        (
            "flat street suffix",
            rf"(?<![\w.,/-])(?:Flat|Studio|Apartment|Unit)[ ]\w{{1,4}},?\s(?:{_NAME}[ ]){{1,3}}"
            rf"{_alt(EN_SUFFIXES)}(?![\w-]){_UNIT}?{_TAIL}?",
            0.75,
        ),
        # Hauptstraße 12, 10115 Berlin / Kerkstraat 5 / Samira-Klotz-Ring 45/54
        (
            "glued street number",
            rf"(?<![\w.,/-])\p{{Lu}}[\p{{L}}.-]*+(?=[ ]\d)(?<=[\p{{L}}-](?i:{_alt(GLUED_SUFFIXES)}))"
            rf"[ ]{_NUMBER}{_END}{_UNIT}?{_TAIL}?",
            0.75,
        ),
        # 12 rue de la Paix, 75002 Paris / 63, chemin Célina Jacquet
        (
            "number type street",
            rf"(?<![\w.,/-]){_NUMBER}(?:[ ]?(?:bis|ter))?,?[ ](?i:{_alt(LEADING_TYPES)})[ ]{_NAME_RUN}{_UNIT}?{_TAIL}?",
            0.75,
        ),
        # Calle Mayor 5, Via Roma 10, ul. Marszałkowska 10/4, Am Markt 3, Piazza Geraci, 77; or, without
        # a house number, with the postcode required: avenue Roger, 50113 Saint-Malo.
        (
            "type street number",
            rf"\m(?<![.,/-])(?:(?i:{_alt(LEADING_TYPES)})|{_alt(DE_LEADING_TYPES)})[ ]?{_NAME_RUN}"
            rf"(?:{_TAIL}|,?[ ](?:(?i:n\.?º|nº|núm\.?|nr\.?|no\.?|n\.)[ ]?)?"
            rf"{_NUMBER}{_END}{_UNIT}?{_TAIL}?)",
            0.75,
        ),
        # Port Sandra, AL 47102: city, state and ZIP on their own.
        ("us city state zip", rf"(?<![\w.,/-]){_CITY},[ ]{_STATE}[ ]\d{{5}}(?:-\d{{4}})?(?![\w-])", 0.75),
        # A British postcode has a shape nothing else has.
        ("gb postcode", rf"(?<![\w.,/-]){_GB_POSTCODE}(?![\w-])", 0.4),
    )
    # A street with its number or postcode is as sure as a name, and wins the type of an overlap with
    # one (the names in "Via Roma 10" or "Martyn Landing" are part of the address).
    CONTEXT = (
        "address", "street", "adresse", "anschrift", "straße", "wohne", "wohnt", "indirizzo", "dirección",
        "direccion", "domicilio", "adres", "adresu", "mieszkam", "woon", "habite", "domicile", "live", "lives",
        "ship", "deliver", "lieferadresse", "postcode", "zip", "plz", "cap", "código postal", "kod pocztowy",
    )  # fmt: skip
    # Every pattern holds a house number or a postcode next to a letter; starting with the digit
    # lets the engine skip to digits instead of trying every letter.
    TRIGGER = r"\d(?:[ ,.º]{0,2}\p{L}|(?<=\p{L}[ ,.]{1,2}\d))"

    def normalise(self, text: str) -> str:
        """Whitespace collapsed and trailing punctuation removed."""
        return " ".join(text.split()).rstrip(",. ")
