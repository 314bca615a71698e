"""The CLIP model resource: device choice in one place, one GPU per concurrent run."""

from __future__ import annotations

from pathlib import Path

from clip_assets.embed import load_count
from resources.clip_model import ClipModelResource, _lock_free_gpu


def test_each_run_takes_a_gpu_no_other_run_holds(tmp_path: Path) -> None:
    first = _lock_free_gpu(2, tmp_path)
    second = _lock_free_gpu(2, tmp_path)
    assert first is not None and second is not None
    assert (first[0], second[0]) == (0, 1)
    assert _lock_free_gpu(2, tmp_path) is None
    first[1].close()
    again = _lock_free_gpu(2, tmp_path)
    assert again is not None and again[0] == 0


def test_auto_device_is_cpu_here_and_encoder_is_reused(tiny_model_name: str) -> None:
    resource = ClipModelResource(model_name=tiny_model_name, pretrained=None, batch_size=4)
    before = load_count()
    encoder = resource.get_encoder()
    assert encoder.device == "cpu"
    assert resource.get_encoder() is encoder
    assert resource.get_encoder(device="cpu") is encoder  # "auto" resolved to the CPU
    assert load_count() - before == 1
    vectors = encoder.encode_texts(["a photo of a cat", "a photo of a dog"])
    assert vectors.shape == (2, 512)
