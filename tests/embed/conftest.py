"""Fixtures for the embeddings stage: a tiny real open_clip model and real encoded images."""

from __future__ import annotations

from pathlib import Path

import pytest
from embed_samples import SIZES, encode, make_image

from clip_assets.embed import ClipEncoder, ModelSpec
from clip_assets.offline.weights import install_tiny_model


@pytest.fixture(scope="session")
def jpegs() -> list[bytes]:
    """JPEG bytes at the SIZES above, one of them grayscale."""
    return [
        encode(make_image(h, w, seed=i, mode="L" if i == 5 else "RGB"))
        for i, (h, w) in enumerate(SIZES)
    ]


@pytest.fixture(scope="session")
def tiny_model_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    return install_tiny_model(Path(tmp_path_factory.mktemp("tiny-clip")), seed=0)


@pytest.fixture(scope="session")
def tiny_spec(tiny_model_name: str) -> ModelSpec:
    # batch_size 3 over 7 images gives a partial last batch and read-ahead across batches;
    # fp32 so that exactness tests compare like with like (auto precision is tested apart).
    return ModelSpec(
        model_name=tiny_model_name,
        pretrained=None,
        precision="fp32",
        batch_size=3,
        num_workers=2,
    )


@pytest.fixture(scope="session")
def tiny_encoder(tiny_spec: ModelSpec) -> ClipEncoder:
    return ClipEncoder.load(tiny_spec)
