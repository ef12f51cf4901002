"""The recognizers the PII processor runs: one module per recognizer, registered here.

``REGISTRY`` is checked when this package is imported (unique names, compilable patterns), so a
broken recognizer fails at start-up, not on the first record that reaches it.
"""

from __future__ import annotations

from presidio_analyzer import predefined_recognizers

from processors.recognizers.api_key import SovtelApiKeyRecognizer
from processors.recognizers.auth_token import SovtelAuthTokenRecognizer
from processors.recognizers.base import SovtelRecognizer
from processors.recognizers.credit_card import SovtelCreditCardRecognizer
from processors.recognizers.de_id_card import SovtelDeIdCardRecognizer
from processors.recognizers.de_tax_id import SovtelDeTaxIdRecognizer
from processors.recognizers.email_address import SovtelEmailRecognizer
from processors.recognizers.es_nif import SovtelEsNifRecognizer
from processors.recognizers.eu_vat import SovtelEuVatRecognizer
from processors.recognizers.fr_nir import SovtelFrNirRecognizer
from processors.recognizers.iban import SovtelIbanRecognizer
from processors.recognizers.ip_address import SovtelIpAddressRecognizer
from processors.recognizers.it_fiscal_code import SovtelItFiscalCodeRecognizer
from processors.recognizers.jwt import SovtelJwtRecognizer
from processors.recognizers.nl_bsn import SovtelNlBsnRecognizer
from processors.recognizers.person_name import SovtelPersonNameRecognizer
from processors.recognizers.phone import SovtelPhoneRecognizer
from processors.recognizers.pl_pesel import SovtelPlPeselRecognizer
from processors.recognizers.private_key import SovtelPrivateKeyRecognizer
from processors.recognizers.secret_assignment import SovtelSecretAssignmentRecognizer
from processors.recognizers.session_token import SovtelSessionTokenRecognizer
from processors.recognizers.street_address import SovtelStreetAddressRecognizer
from processors.recognizers.us_ssn import SovtelUsSsnRecognizer

REGISTRY: tuple[type[SovtelRecognizer], ...] = (
    SovtelPrivateKeyRecognizer,
    SovtelJwtRecognizer,
    SovtelApiKeyRecognizer,
    SovtelAuthTokenRecognizer,
    SovtelSessionTokenRecognizer,
    SovtelSecretAssignmentRecognizer,
    SovtelEmailRecognizer,
    SovtelIbanRecognizer,
    SovtelCreditCardRecognizer,
    SovtelEuVatRecognizer,
    SovtelDeTaxIdRecognizer,
    SovtelDeIdCardRecognizer,
    SovtelFrNirRecognizer,
    SovtelItFiscalCodeRecognizer,
    SovtelEsNifRecognizer,
    SovtelNlBsnRecognizer,
    SovtelPlPeselRecognizer,
    SovtelUsSsnRecognizer,
    SovtelPhoneRecognizer,
    SovtelStreetAddressRecognizer,
    SovtelIpAddressRecognizer,
    SovtelPersonNameRecognizer,
)

# PERSON also comes from spaCy NER (processors.recognizers.person_ner) when a model is installed.
ENTITIES: tuple[str, ...] = tuple(dict.fromkeys(r.ENTITY for r in REGISTRY))


def check_registry(registry: tuple[type[SovtelRecognizer], ...] = REGISTRY) -> None:
    """Raise ValueError if two recognizers share a name, a name shadows one of Presidio's
    predefined recognizers (Presidio's registry finds classes by name among all subclasses, so a
    clash would replace its recognizer with ours in any AnalyzerEngine of the process), or a
    recognizer declares no patterns."""
    names: set[str] = set()
    for cls in registry:
        if cls.__name__ in names:
            raise ValueError(f"recognizer {cls.__name__} is registered twice")
        if hasattr(predefined_recognizers, cls.__name__):
            raise ValueError(f"recognizer {cls.__name__} has the name of a Presidio predefined recognizer")
        names.add(cls.__name__)
        if not cls.PATTERNS:
            raise ValueError(f"recognizer {cls.__name__} declares no patterns")


def default_recognizers(entities: tuple[str, ...] | None = None) -> list[SovtelRecognizer]:
    """A fresh instance of every registered recognizer (optionally only those for ``entities``)."""
    wanted = set(entities) if entities is not None else None
    return [cls() for cls in REGISTRY if wanted is None or cls.ENTITY in wanted]


check_registry()

__all__ = ["ENTITIES", "REGISTRY", "SovtelRecognizer", "check_registry", "default_recognizers"]
