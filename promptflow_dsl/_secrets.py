"""Secrets: which values must never show, and the functions that hide them.

A *known secret* is

- a key a :class:`~promptflow_dsl.Model` was built with (``api_key=``, or a ``params``
  entry with a secret name, one level deep, so ``extra_headers={"Authorization": ...}``
  counts): the model remembers it when it is built, before any call;
- the value of an environment variable with a secret name (read each time, so a key set
  late is known too).

A *secret name* ends in the word ``key``, ``token``, ``secret``, ``password``, ``passwd``
or ``authorization`` (words split at anything that is not a letter or digit, any case), or
its letters end in ``apikey``, ``token``, ``secret`` or ``password``: ``OPENAI_API_KEY``,
``HF_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``client_secret``, ``apiKey``. ``max_tokens`` and
``TOKENIZERS_PARALLELISM`` are not. Values shorter than 8 characters are never secrets:
masking ``1`` or ``sk`` in every message would hide nothing and garble everything.

:func:`scrub` masks every known secret in a text. Every :class:`PromptflowError` scrubs its
message and raw reply when it is made, the CLI scrubs what it prints, and stored recipe
sources go through :func:`redact_source`.

>>> remember_secret("sk-live-0123456789abcdef")
>>> scrub("Incorrect API key provided: sk-live-0123456789abcdef.")
'Incorrect API key provided: sk-...***.'
"""

from __future__ import annotations

import ast
import io
import os
import re
import threading
import tokenize
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "credentials_in_url",
    "is_secret_name",
    "known_secrets",
    "mask",
    "redact_source",
    "remember_model_secrets",
    "remember_secret",
    "scrub",
    "scrub_exception_chain",
    "without_credentials",
]

MIN_SECRET_LENGTH = 8
"""Shorter values are never masked."""

_ENDING_WORDS = frozenset({"key", "token", "secret", "password", "passwd", "authorization"})
_ENDING_LETTERS = ("apikey", "token", "secret", "password", "passwd")
_REMEMBERED: set[str] = set()
_REMEMBERED_LOCK = threading.Lock()  # models are built on any thread, errors made on others

# String literals that are keys whatever they are called: the prefixes providers print on
# their keys (OpenAI, Anthropic and others `sk-`, Hugging Face `hf_`, Groq `gsk_`, xAI
# `xai-`, Replicate `r8_`, GitHub `ghp_`/`github_pat_`, Google `AIza`, AWS key ids), and
# bearer tokens.
_KEY_LITERAL = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-[A-Za-z0-9_-]{12,}"
    r"|(?:hf|gsk|r8|gh[pousr])_[A-Za-z0-9]{16,}"
    r"|github_pat_[A-Za-z0-9_]{16,}"
    r"|xai-[A-Za-z0-9]{16,}"
    r"|AIza[0-9A-Za-z_-]{30,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|(?<=Bearer )[A-Za-z0-9._~+/=-]{16,}"
    r")"
)


def is_secret_name(name: str) -> bool:
    """True for a name that marks a credential.

    >>> [is_secret_name(n) for n in ("OPENAI_API_KEY", "hf_token", "apiKey", "max_tokens")]
    [True, True, True, False]
    """
    words = re.findall(r"[a-z0-9]+", name.lower())
    return bool(words) and (words[-1] in _ENDING_WORDS or "".join(words).endswith(_ENDING_LETTERS))


def remember_secret(value: object) -> None:
    """Make *value* a known secret, if it is a string long enough to be one.

    The last word is remembered as well, so the token of ``"Bearer TOKEN"`` is masked alone.
    """
    if not isinstance(value, str):
        return
    words = value.split()
    candidates = {value, value.strip(), words[-1] if words else ""}
    with _REMEMBERED_LOCK:
        _REMEMBERED.update(c for c in candidates if len(c) >= MIN_SECRET_LENGTH)


def remember_model_secrets(api_key: str | None, params: Mapping[str, object]) -> None:
    """Remember a model's key and the secret-named entries of its params (and theirs)."""
    remember_secret(api_key)
    for name, value in params.items():
        if isinstance(value, Mapping):
            for inner, secret in value.items():
                if is_secret_name(str(inner)):
                    remember_secret(secret)
        elif is_secret_name(str(name)):
            remember_secret(value)


def _environment_secrets() -> Iterator[str]:
    for name, value in os.environ.items():
        if is_secret_name(name) and len(value.strip()) >= MIN_SECRET_LENGTH:
            yield value.strip()


def known_secrets() -> list[str]:
    """Every known secret, longest first (so a secret inside another goes with it)."""
    with _REMEMBERED_LOCK:
        remembered = set(_REMEMBERED)
    return sorted(remembered | set(_environment_secrets()), key=len, reverse=True)


def mask(secret: str) -> str:
    """What shows instead of *secret*: its first 3 characters of 20 or more, else nothing.

    >>> mask("sk-proj-0123456789abcdef"), mask("hunter2hunter2")
    ('sk-...***', '***')
    """
    return f"{secret[:3]}...***" if len(secret) >= 20 else "***"


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """*text* with every known secret (or each of *secrets*) masked."""
    for secret in known_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, mask(secret))
    return text


def scrub_exception_chain(exc: BaseException) -> None:
    """Scrub, in place, the text of *exc* and of the exceptions it was raised from.

    A provider's exception, chained under ours, is printed by every traceback: its
    arguments and string attributes (LiteLLM's ``message``) must not hold a key either.
    """
    secrets = known_secrets()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(scrub(a, secrets) if isinstance(a, str) else a for a in current.args)
        for name, value in list(vars(current).items()):
            if isinstance(value, str) and scrub(value, secrets) != value:
                setattr(current, name, scrub(value, secrets))
        current = current.__cause__ or current.__context__


def credentials_in_url(url: str) -> bool:
    """True when *url* carries a user name, a password, or a secret-named query parameter.

    >>> credentials_in_url("http://me:pw@host/v1"), credentials_in_url("http://host/v1")
    (True, False)
    """
    try:
        parts = urlsplit(url if "//" in url else "//" + url)
    except ValueError:
        return "@" in url
    query_names = [pair.partition("=")[0] for pair in parts.query.split("&") if pair]
    return "@" in parts.netloc or any(is_secret_name(name) for name in query_names)


def without_credentials(url: str) -> str:
    """*url* with its user name, password and query left out, safe to show.

    >>> without_credentials("https://me:pw@host:8000/v1?api_key=x")
    'https://host:8000/v1'
    """
    try:
        parts = urlsplit(url if "//" in url else "//" + url)
    except ValueError:
        return "(a URL that does not parse)"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_source(source: str) -> str:
    """Python *source* with its credentials masked, for storing or showing it.

    Masked: the string literal given to a secret name (``api_key="..."``,
    ``OPENAI_API_KEY = "..."``, ``{"Authorization": "..."}``,
    ``os.environ["HF_TOKEN"] = "..."``, ``environ.setdefault("HF_TOKEN", "...")``) becomes
    ``"***"``; key-shaped text anywhere (``sk-...``, ``hf_...``, ``Bearer ...``, see
    ``_KEY_LITERAL``) and every known secret are masked. Source that parsed still parses.

    >>> print(redact_source('model = Model("openai/x", api_key="abc12345")'))
    model = Model("openai/x", api_key="***")
    """
    redacted = _redact_secret_assignments(source)
    redacted = _KEY_LITERAL.sub(lambda match: mask(match.group()), redacted)
    return scrub(redacted)


def _redact_secret_assignments(source: str) -> str:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return source  # not Python: the pattern and known-secret passes still run
    line_starts = [0]  # split as tokenize splits, so its (row, column) map to offsets
    for line in io.StringIO(source).readlines():
        line_starts.append(line_starts[-1] + len(line))
    code = [t for t in tokens if t.type not in (tokenize.NL, tokenize.COMMENT)]
    spans = [
        (line_starts[t.start[0] - 1] + t.start[1], line_starts[t.end[0] - 1] + t.end[1])
        for i, t in enumerate(code)
        if t.type == tokenize.STRING and any(map(is_secret_name, _names_given(code, i)))
    ]
    for start, end in reversed(spans):
        source = source[:start] + '"***"' + source[end:]
    return source


_OPENERS = {"(": ")", "[": "]", "{": "}"}
_BOUNDARIES = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}


def _names_given(code: list[tokenize.TokenInfo], index: int) -> list[str]:
    """The names the string at *index* is assigned to: ``NAME =``, ``"name":``, ``x["name"] =``,
    or the string before it in ``("name", value)``."""
    if index == 0 or code[index - 1].type != tokenize.OP:
        return []
    before = code[index - 1].string
    if before == "," and index >= 2 and code[index - 2].type == tokenize.STRING:
        return [_literal_text(code[index - 2].string)]
    if before not in ("=", ":", ":="):
        return []
    names, depth = [], 0
    for token in reversed(code[: index - 1]):
        if token.type in _BOUNDARIES or token.string == ";":
            break
        if token.string in _OPENERS.values():
            depth += 1
        elif token.string in _OPENERS:
            if depth == 0:
                break
            depth -= 1
        elif token.string == "," and depth == 0:
            break
        elif token.type == tokenize.NAME:
            names.append(token.string)
        elif token.type == tokenize.STRING:
            names.append(_literal_text(token.string))
    return names


def _literal_text(literal: str) -> str:
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return ""
    return value if isinstance(value, str) else ""
