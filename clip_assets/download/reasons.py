"""The fixed vocabulary of the images table's ``reason`` column, and which reasons are transient.

``reason`` is null exactly when ``status`` is ``ok``. Everything else is one of:

Input: ``missing_url`` (null or blank), ``bad_url`` (unparseable, no host),
``unsupported_scheme`` (not http/https).
Safety: ``private_address`` (host is or resolves to a private, loopback, link-local, multicast,
reserved or unspecified address, checked before every connection including after redirects).
Network: ``dns_not_found`` (the name does not exist or has no address; permanent), and,
transient, ``dns_error`` (every DNS server failed, e.g. SERVFAIL), ``dns_timeout`` (no DNS server
answered in time), ``connect_error``, ``timeout`` (connect, read, or the total limit of one
request), ``network_error`` (connection dropped or malformed answer mid-request),
``host_unreachable`` (the host's breaker is open: it failed ``host_failure_limit`` times in a
row in this run, so no request was sent); ``tls_error`` (certificate refused or handshake
failed; permanent).
HTTP: ``http_<code>`` for any final non-2xx answer; ``http_408``, ``http_429`` and every
``http_5xx`` are transient. ``too_many_redirects``, ``bad_redirect`` (3xx without a usable
Location). ``too_large`` (body over ``max_body_bytes``, announced or counted while streaming).
Consent, with status ``opted_out``: ``x_robots_tag:<directive>`` (e.g. ``x_robots_tag:noai``),
``robots_txt`` (the host's robots.txt disallows the URL for our user-agent token),
``tdm_reservation`` (TDMRep: a ``tdm-reservation: 1`` header or the host's tdmrep.json).
With status ``failed`` and transient: ``robots_txt_unreachable`` (the host's robots.txt answered
5xx or could not be fetched; crawlers then stay away for the run).
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
DNS_TIMEOUT = "dns_timeout"
HOST_UNREACHABLE = "host_unreachable"
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
ROBOTS_TXT = "robots_txt"
ROBOTS_TXT_UNREACHABLE = "robots_txt_unreachable"
TDM_RESERVATION = "tdm_reservation"

#: Reasons the DNS lookup gives (a ``health`` check groups them).
DNS_REASONS: frozenset[str] = frozenset({DNS_NOT_FOUND, DNS_ERROR, DNS_TIMEOUT})

#: Failures that may well succeed later: retried within a run and by ``retry_failed``.
TRANSIENT_REASONS: frozenset[str] = frozenset(
    {DNS_ERROR, DNS_TIMEOUT, CONNECT_ERROR, TIMEOUT, NETWORK_ERROR, "http_408", "http_429"}
    | {HOST_UNREACHABLE, ROBOTS_TXT_UNREACHABLE}
    | {f"http_{code}" for code in range(500, 600)}
)

#: Transient failures decided once for a host for the whole run (its breaker is open, its
#: robots.txt could not be read): retrying them within the run would only wait, so they are
#: left for ``retry_failed``.
DEFERRED_REASONS: frozenset[str] = frozenset({HOST_UNREACHABLE, ROBOTS_TXT_UNREACHABLE})

#: Connection-level failures that count towards a host's breaker.
HOST_FAILURES: frozenset[str] = frozenset({CONNECT_ERROR, TIMEOUT})


def http_reason(code: int) -> str:
    """``http_<code>`` for a final non-2xx status."""
    return f"http_{code}"


def is_transient(reason: str | None) -> bool:
    """True when a failure with ``reason`` is worth retrying."""
    return reason in TRANSIENT_REASONS
