"""Secrets (Hub tokens) normalised where they are read and scrubbed from every error text.

A secret file usually ends in a newline; sent as is, ``Bearer <token>\\n`` is an illegal
header and the HTTP layer's error quotes it escaped (``...\\n'``), a form a scrubber looking
for the raw token misses. So secrets are stripped once where they enter
(:func:`normalise_secret`), and :func:`scrub` removes every rendering an error or log line
may carry: raw and stripped, ``repr``/bytes/JSON escaped, URL-encoded, and base64 (as in a
Basic ``Authorization`` header, at any byte offset). :func:`scrubbed_errors` turns any
exception raised in its block into one whose text is scrubbed and whose chain is dropped (a
chained exception would carry the unscrubbed text into Dagster's event log).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import quote, quote_plus

MASK = "***"
_LOWER_ESCAPES = re.compile(r"%[0-9A-F]{2}")


def normalise_secret(value: str | None) -> str | None:
    """``value`` without surrounding whitespace; None when nothing is left."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def _base64_cores(data: bytes) -> set[str]:
    """The base64 characters that depend on ``data`` alone, for each offset (0, 1, 2) at
    which it may start inside a longer encoded value (``user:token``)."""
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode()
        first = 4 if offset else 0  # the first group also holds the bytes before ``data``
        last = 4 * ((offset + len(data)) // 3)  # the last full group; the rest mixes padding
        core = encoded[first:last]
        cores.update({core, core.replace("+", "-").replace("/", "_")})
    return cores


def secret_forms(secret: str) -> set[str]:
    """Every text form of ``secret`` (and of it stripped) an error or log line may show."""
    forms: set[str] = set()
    for value in {secret, secret.strip()}:
        if not value:
            continue
        data = value.encode()
        forms.update(
            {
                value,
                repr(value)[1:-1],
                repr(data)[2:-1],
                json.dumps(value)[1:-1],
                quote(value, safe=""),
                quote_plus(value, safe=""),
                _LOWER_ESCAPES.sub(lambda m: m.group(0).lower(), quote(value, safe="")),
            }
        )
        forms.update(_base64_cores(data))
    return {form for form in forms if form}


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every form of every secret replaced by ``***`` (longest forms first, so
    a form containing another goes whole)."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= secret_forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


@contextmanager
def scrubbed_errors(
    secrets: Iterable[str | None], what: str, error: type[Exception] = RuntimeError
) -> Iterator[None]:
    """Re-raises any exception of the block as ``error("<what>: <Type>: <text>")`` with the
    secrets scrubbed and no chained exception; with no secret given, the original is kept as
    the cause (it cannot carry one)."""
    secrets = [secret for secret in secrets if secret]
    try:
        yield
    except Exception as exc:
        message = scrub(f"{what}: {type(exc).__name__}: {exc}", secrets)
        if secrets:
            raise error(message) from None
        raise error(message) from exc
