"""Fixtures for the images-stage tests."""

from __future__ import annotations

import pytest

from clip_assets.download.download_settings import DownloadSettings


@pytest.fixture
def settings() -> DownloadSettings:
    """Loopback allowed, short time limits, near-zero backoff, in-process."""
    return DownloadSettings(
        allowed_hosts=("127.0.0.1",),
        connect_timeout_s=2.0,
        read_timeout_s=2.0,
        total_timeout_s=3.0,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        workers=0,
    )
