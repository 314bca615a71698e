"""https on loopback: a certificate we cannot trust is a permanent ``tls_error``."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from download_helpers import download_one

from clip_assets.offline import images
from clip_assets.offline.image_server import ImageServer, image

JPEG = images.jpeg(100, 100, 1)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (no CA anywhere trusts it)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    command += " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
    )
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def test_untrusted_certificate_is_a_permanent_tls_error(settings, certificate) -> None:
    with ImageServer({"/a.jpg": image(JPEG)}, tls=server_context(certificate)) as srv:
        row = download_one(srv.url("/a.jpg"), settings)
        assert srv.hits["/a.jpg"] == 0  # no request is sent over a refused handshake
    assert (row["status"], row["reason"], row["attempts"]) == ("failed", "tls_error", 1)


def test_server_speaks_https_to_a_client_that_trusts_it(certificate) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    with ImageServer({"/a.jpg": image(JPEG)}, tls=server_context(certificate)) as srv:
        assert srv.url("/a.jpg").startswith("https://")
        assert httpx.get(srv.url("/a.jpg"), verify=trusting).content == JPEG
