"""Secrets (Hub tokens) normalised where they are read and scrubbed from every error text.

A secret file usually ends in a newline; sent as is, ``Bearer <token>\\n`` is an illegal
header and the HTTP layer's error quotes it escaped (``...\\n'``), a form a scrubber looking
for the raw token misses. So secrets are stripped once where they enter
(:func:`normalise_secret`), and :func:`scrub` removes every rendering an error or log line
may carry: raw and stripped, ``repr``/bytes/JSON escaped, URL-encoded, and base64 (as in a
Basic ``Authorization`` header, at any byte offset). :func:`scrubbed_errors` turns any
exception raised in its block into one whose text is scrubbed and whose chain is dropped (a
chained exception would carry the unscrubbed text into Dagster's event log), and
:func:`protect_logs` scrubs a secret from every log record the process creates afterwards
(a log record factory: logger filters would miss records of child loggers).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_LOWER_ESCAPES = re.compile(r"%[0-9A-F]{2}")
_PLAIN_RUN = re.compile(r"[A-Za-z0-9_-]{8,}")


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


def _escaped(value: str) -> set[str]:
    """``value`` as ``repr`` and JSON write it inside quotes, nested up to three deep (an
    exception's repr quoting a message that quotes a header)."""
    found, level = set(), {value}
    for _ in range(3):
        level = {repr(text)[1:-1] for text in level} | {json.dumps(text)[1:-1] for text in level}
        found |= level
    return found


def secret_forms(secret: str) -> set[str]:
    """Every text form of ``secret`` (and of it stripped) an error or log line may show, and
    each run of 8 or more letters, digits, ``_`` or ``-`` in it, which survives any escaping
    of the characters around it."""
    forms: set[str] = set(_PLAIN_RUN.findall(secret))
    for value in {secret, secret.strip()}:
        if not value:
            continue
        data = value.encode()
        escaped = quote(value, safe="")
        forms |= {value, repr(data)[2:-1], escaped, quote_plus(value, safe="")}
        forms.add(_LOWER_ESCAPES.sub(lambda m: m.group(0).lower(), escaped))
        forms |= _escaped(value) | _base64_cores(data)
    return {form for form in forms if form}


def _forms_longest_first(secrets: Iterable[str | None]) -> tuple[str, ...]:
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= secret_forms(secret)
    # Longest first, so a form containing another goes whole.
    return tuple(sorted(forms, key=len, reverse=True))


def _mask(text: str, forms: tuple[str, ...]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every form of every secret replaced by ``***``."""
    return _mask(text, _forms_longest_first(secrets))


_logged_secrets: set[str] = set()
_log_forms: tuple[str, ...] = ()
_make_record = logging.getLogRecordFactory()


def _scrubbed_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _make_record(*args, **kwargs)
    forms = _log_forms
    try:
        message = record.getMessage()
    except Exception:  # a malformed logging call: logging reports it itself when emitting
        return record
    clean = _mask(message, forms)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[0] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        clean = _mask(text, forms)
        if clean != text:
            record.exc_text = clean  # formatters use it instead of formatting exc_info
    if record.stack_info:
        record.stack_info = _mask(record.stack_info, forms)
    return record


def protect_logs(secret: str | None) -> None:
    """From now on every log record this process creates (any logger, any library: httpcore
    logs refused headers at DEBUG) has every form of ``secret`` scrubbed from its message,
    exception text and stack."""
    global _log_forms
    if not secret or secret in _logged_secrets:
        return
    if not _logged_secrets:
        logging.setLogRecordFactory(_scrubbed_record)
    _logged_secrets.add(secret)
    _log_forms = _forms_longest_first(_logged_secrets)


@contextmanager
def scrubbed_errors(
    secrets: Iterable[str | None], what: str, error: type[Exception] = RuntimeError
) -> Iterator[None]:
    """Re-raises any exception of the block as ``error("<what>: <Type>: <text>")`` with the
    secrets scrubbed and no chained exception; with no secret given, the original is kept as
    the cause (it cannot carry one). The secrets are also kept out of logs
    (:func:`protect_logs`)."""
    secrets = [secret for secret in secrets if secret]
    for secret in secrets:
        protect_logs(secret)
    try:
        yield
    except Exception as exc:
        message = scrub(f"{what}: {type(exc).__name__}: {exc}", secrets)
        if secrets:
            raise error(message) from None
        raise error(message) from exc
