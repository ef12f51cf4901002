"""API keys of common providers, recognised by their documented prefixes."""

from __future__ import annotations

from processors.recognizers.base import SovtelRecognizer


class SovtelApiKeyRecognizer(SovtelRecognizer):
    """Provider keys with a fixed prefix (OpenAI, Anthropic, AWS, GitHub, GitLab, Slack, Stripe,
    Google, Hugging Face, Groq, Replicate, SendGrid, npm, PyPI). Keys without a prefix are found by
    their context (see ``secret_assignment``)."""

    ENTITY = "API_KEY"
    PATTERNS = (
        ("openai/anthropic", r"(?<![\w-])sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", 0.9),
        (
            "aws access key id",
            r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}(?![A-Za-z0-9])",
            0.9,
        ),
        ("github", r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})", 0.95),
        ("gitlab", r"(?<![\w-])gl(?:pat|dt|rt|ptt|cbt)-[A-Za-z0-9_-]{20,}", 0.95),
        ("slack", r"(?<![\w-])xox[abposre]-(?:[0-9]+-)*[A-Za-z0-9-]{10,}", 0.95),
        ("stripe", r"(?<![\w-])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", 0.95),
        ("google", r"(?<![\w-])AIza[0-9A-Za-z_-]{35}", 0.95),
        ("hugging face", r"(?<![\w-])hf_[A-Za-z0-9]{30,}", 0.95),
        ("groq", r"(?<![\w-])gsk_[A-Za-z0-9]{40,}", 0.95),
        ("replicate", r"(?<![\w-])r8_[A-Za-z0-9]{30,}", 0.95),
        ("sendgrid", r"(?<![\w-])SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}", 0.95),
        ("npm", r"(?<![\w-])npm_[A-Za-z0-9]{36}", 0.95),
        ("pypi", r"(?<![\w-])pypi-[A-Za-z0-9_-]{50,}", 0.95),
    )
    TRIGGER = (
        r"sk-|AKIA|ASIA|A[BCGIRNP][A-Z]A|gh[pousr]_|github_pat_|gl[a-z]{1,3}-|xox|_live_|_test_|AIza|hf_|gsk_"
        r"|r8_|SG\.|npm_|pypi-"
    )
