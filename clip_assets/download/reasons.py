"""The fixed vocabulary of the images table's ``reason`` column, and which reasons are transient.

``reason`` is null exactly when ``status`` is ``ok``. Everything else is one of:

Input: ``missing_url`` (null or blank), ``bad_url`` (unparseable, no host),
``unsupported_scheme`` (not http/https).
Safety: ``private_address`` (host is or resolves to a private, loopback, link-local, multicast,
reserved or unspecified address, checked before every connection including after redirects).
Network: ``dns_not_found`` (the name does not exist; permanent), and, transient,
``dns_error`` (the resolver failed), ``connect_error``, ``timeout`` (connect, read, or the total
limit of one request), ``network_error`` (connection dropped or malformed answer mid-request);
``tls_error`` (certificate refused or handshake failed; permanent).
HTTP: ``http_<code>`` for any final non-2xx answer; ``http_408``, ``http_429`` and every
``http_5xx`` are transient. ``too_many_redirects``, ``bad_redirect`` (3xx without a usable
Location). ``too_large`` (body over ``max_body_bytes``, announced or counted while streaming).
Consent: ``x_robots_tag:<directive>`` with status ``opted_out`` (e.g. ``x_robots_tag:noai``).
Image: ``not_an_image``, ``truncated_image``, ``decode_error``, ``decompression_bomb``,
``too_small``, ``bad_aspect_ratio``.
Integrity: ``sha256_mismatch`` with status ``hash_mismatch``.
"""

from __future__ import annotations

MISSING_URL = "missing_url"
BAD_URL = "bad_url"
UNSUPPORTED_SCHEME = "unsupported_scheme"
PRIVATE_ADDRESS = "private_address"
DNS_NOT_FOUND = "dns_not_found"
DNS_ERROR = "dns_error"
CONNECT_ERROR = "connect_error"
TLS_ERROR = "tls_error"
TIMEOUT = "timeout"
NETWORK_ERROR = "network_error"
TOO_MANY_REDIRECTS = "too_many_redirects"
BAD_REDIRECT = "bad_redirect"
TOO_LARGE = "too_large"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED_IMAGE = "truncated_image"
DECODE_ERROR = "decode_error"
DECOMPRESSION_BOMB = "decompression_bomb"
TOO_SMALL = "too_small"
BAD_ASPECT_RATIO = "bad_aspect_ratio"
SHA256_MISMATCH = "sha256_mismatch"
X_ROBOTS_TAG_PREFIX = "x_robots_tag:"

#: Failures that may well succeed later: retried within a run and by ``retry_failed``.
TRANSIENT_REASONS: frozenset[str] = frozenset(
    {DNS_ERROR, CONNECT_ERROR, TIMEOUT, NETWORK_ERROR, "http_408", "http_429"}
    | {f"http_{code}" for code in range(500, 600)}
)


def http_reason(code: int) -> str:
    """``http_<code>`` for a final non-2xx status."""
    return f"http_{code}"


def is_transient(reason: str | None) -> bool:
    """True when a failure with ``reason`` is worth retrying."""
    return reason in TRANSIENT_REASONS
