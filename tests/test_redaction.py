"""Secrets are normalised where read and every rendering of them is scrubbed from errors."""

from __future__ import annotations

import base64
import json
import logging
import re
from urllib.parse import quote, quote_plus

import pytest

from clip_assets.redaction import normalise_secret, protect_logs, scrub, scrubbed_errors
from clip_assets.source.files import HubAccess
from resources.hub import HubResource

SECRET = "hf_Tok/en+with=odd chars\n"


def renderings(secret: str) -> list[str]:
    """How libraries print a secret: raw, escaped, URL-encoded, inside a Basic header."""
    stripped = secret.strip()
    return [
        secret,
        stripped,
        repr(secret),
        repr(secret.encode()),
        json.dumps(secret),
        quote(secret, safe=""),
        re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(secret, safe="")),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"user:{stripped}".encode()).decode(),
        base64.b64encode(f"ab:{stripped}".encode()).decode(),
        base64.urlsafe_b64encode(f"x:{secret}".encode()).decode(),
    ]


@pytest.mark.parametrize("shown", range(len(renderings(SECRET))))
def test_every_rendering_is_scrubbed(shown: int) -> None:
    form = renderings(SECRET)[shown]
    text = scrub(f"error: header {form} refused", [SECRET])
    assert "refused" in text and "***" in text
    for core in ("Tok/en", "Tok%2Fen", "with=odd", "VG9r", "en+with"):
        assert core not in text.replace("***", ""), (form, text)


def test_secrets_are_stripped_where_read() -> None:
    assert normalise_secret(" hf_abc\n") == "hf_abc"
    assert normalise_secret("\n") is None
    assert HubAccess(token="hf_abc\n").token == "hf_abc"
    assert HubResource(token="hf_abc\r\n").token == "hf_abc"
    assert HubResource(token="hf_abc\r\n").access().token == "hf_abc"


def test_scrubbed_errors_drop_the_chain_only_when_a_secret_could_be_in_it() -> None:
    with pytest.raises(RuntimeError) as info, scrubbed_errors([SECRET], "listing"):
        raise ValueError(f"bad header {SECRET!r}")
    assert str(info.value) == "listing: ValueError: bad header '***'"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(RuntimeError) as info, scrubbed_errors([None], "listing"):
        raise ValueError("no secret here")
    assert isinstance(info.value.__cause__, ValueError)


def test_a_protected_secret_is_scrubbed_from_every_log_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "hf_logged_canary_0123\n"
    protect_logs(secret)
    caplog.set_level(logging.DEBUG)
    child = logging.getLogger("some_library.http11.deep")
    child.debug("send_request_headers.failed %r", f"Bearer {secret}")
    try:
        raise ValueError(f"header {secret.encode()!r}")
    except ValueError:
        child.exception("failed")
    assert "hf_logged_canary" not in caplog.text
    assert caplog.text.count("***") == 2
