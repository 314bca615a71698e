"""Fixtures for the release tests: sample inputs and the loopback Hub, spoken to over LFS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest
from release_samples import TOKEN, make_inputs
from stand_ins.hub_server import HubServer

from clip_assets.release.inputs import ReleaseInputs


@pytest.fixture(autouse=True)
def _lfs_not_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loopback Hub speaks LFS, not Xet (read at call time, so patching works)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")


@pytest.fixture
def inputs(tmp_path: Path) -> ReleaseInputs:
    return make_inputs(tmp_path / "store")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubServer]:
    """A loopback Hub that accepts only ``TOKEN``."""
    with HubServer(tmp_path / "hub", token=TOKEN) as server:
        yield server
