"""ClipEncoder on a tiny real open_clip model: parity, normalisation, devices, weights errors."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from clip_assets.embed import ClipEncoder, ModelSpec, WeightsError, load_count
from clip_assets.embed import model_loading as model_module
from clip_assets.embed.calibrate import BF16_MIN_COSINE, cpu_has_native_bf16
from clip_assets.embed.model_loading import resolve_device, resolve_precision


@pytest.fixture(scope="module")
def reference(tiny_model_name):
    """open_clip's own model and preprocess for the same weights, built without our code."""
    model, _, preprocess = open_clip.create_model_and_transforms(tiny_model_name)
    return model.eval(), preprocess, open_clip.get_tokenizer(tiny_model_name)


def _unit(x: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(x, dim=-1).numpy()


def test_image_embeddings_match_open_clip_preprocess_and_encode(tiny_encoder, reference, jpegs):
    model, preprocess, _ = reference
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.open(io.BytesIO(data))) for data in jpegs])
        expected = _unit(model.encode_image(pixels))
    from_bytes = tiny_encoder.encode_images(jpegs)
    from_pil = tiny_encoder.encode_pil([Image.open(io.BytesIO(data)) for data in jpegs])
    for ours in (from_bytes, from_pil):
        assert ours.shape == (len(jpegs), 512) and ours.dtype == np.float32
        assert np.min(np.sum(ours * expected, axis=1)) >= 0.999


def test_text_embeddings_match_open_clip(tiny_encoder, reference):
    model, _, tokenizer = reference
    prompts = ["a photo of a cat", "a diagram", "", "a dog on a beach at sunset"]
    with torch.no_grad():
        expected = _unit(model.encode_text(tokenizer(prompts)))
    np.testing.assert_allclose(tiny_encoder.encode_texts(prompts), expected, atol=1e-5)


def test_outputs_are_unit_norm_and_independent_of_batching(tiny_model_name, tiny_encoder, jpegs):
    batched = tiny_encoder.encode_images(jpegs)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        np.linalg.norm(tiny_encoder.encode_texts(["x"] * 5), axis=1), 1.0, atol=1e-5
    )
    serial = ClipEncoder.load(
        ModelSpec(
            model_name=tiny_model_name,
            pretrained=None,
            precision="fp32",
            batch_size=1,
            num_workers=0,
        )
    )
    np.testing.assert_allclose(serial.encode_images(jpegs[::-1])[::-1], batched, atol=1e-5)


def test_empty_inputs_give_empty_arrays(tiny_encoder):
    assert tiny_encoder.encode_images([]).shape == (0, 512)
    assert tiny_encoder.encode_texts([]).shape == (0, 512)


def test_device_auto_picks_cuda_only_when_present(tiny_encoder):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert tiny_encoder.device.startswith(expected)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda:0")


@pytest.mark.parametrize(
    ("native", "cosine", "expected"),
    [
        (False, 1.0, "fp32"),
        (True, 0.9990, "fp32"),
        (True, 0.9999, "bf16"),
    ],
)
def test_auto_precision_on_cpu_takes_bf16_only_when_native_and_measured_close(
    monkeypatch, native, cosine, expected
):
    monkeypatch.setattr(model_module, "cpu_has_native_bf16", lambda: native)
    chosen, measured = resolve_precision("auto", torch.device("cpu"), lambda: cosine)
    assert chosen == expected
    assert measured == (cosine if native else None)
    assert resolve_precision("fp16", torch.device("cpu"), lambda: 0.0) == ("fp16", None)


def test_native_bf16_is_read_from_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t: fpu avx2 avx512f\n")
    assert not cpu_has_native_bf16(cpuinfo)
    cpuinfo.write_text("flags\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_native_bf16(cpuinfo)
    assert not cpu_has_native_bf16(tmp_path / "missing")


def test_auto_precision_measures_these_weights(tiny_model_name, tiny_encoder, jpegs):
    auto = ClipEncoder.load(ModelSpec(model_name=tiny_model_name, pretrained=None))
    cosine = auto.identity["bf16_vs_fp32_min_cosine"]
    if cpu_has_native_bf16():
        assert auto.identity["precision"] == ("bf16" if cosine >= BF16_MIN_COSINE else "fp32")
    else:
        assert (auto.identity["precision"], cosine) == ("fp32", None)
    agreement = np.sum(auto.encode_images(jpegs) * tiny_encoder.encode_images(jpegs), axis=1)
    assert agreement.min() >= 0.999


def test_bf16_on_cpu_stays_close_to_fp32(tiny_model_name, tiny_encoder, jpegs):
    bf16 = ClipEncoder.load(
        ModelSpec(model_name=tiny_model_name, pretrained=None, device="cpu", precision="bf16")
    )
    assert bf16.identity["precision"] == "bf16"
    cosine = np.sum(bf16.encode_images(jpegs) * tiny_encoder.encode_images(jpegs), axis=1)
    assert cosine.min() >= 0.999


def test_identity_records_model_weights_hash_and_preprocessing(tiny_encoder):
    identity = tiny_encoder.identity
    weights = Path(identity["weights_file"])
    assert identity["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert identity["precision"] == "fp32" and identity["dim"] == 512
    assert identity["preprocessing"]["size"] == [224, 224]
    assert identity["preprocessing"]["interpolation"] == "bicubic"
    assert identity["preprocessing"]["resize_mode"] == "shortest"


def test_each_load_is_counted_once_and_encoding_loads_nothing(tiny_model_name, jpegs):
    before = load_count()
    encoder = ClipEncoder.load(ModelSpec(model_name=tiny_model_name, pretrained=None))
    encoder.encode_images(jpegs[:2])
    encoder.encode_texts(["a"])
    assert load_count() == before + 1


@pytest.fixture(scope="module")
def tiny_config_name(tiny_model_name, tmp_path_factory) -> str:
    """The tiny architecture registered under a plain model name, as add_model_config allows."""
    folder = Path(tiny_model_name.removeprefix("local-dir:"))
    config = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]
    path = tmp_path_factory.mktemp("configs") / "clip-assets-tiny-test.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return path.stem


def test_weights_file_path_loads_and_is_hashed(tiny_config_name, tiny_encoder, jpegs):
    weights = tiny_encoder.identity["weights_file"]
    encoder = ClipEncoder.load(
        ModelSpec(model_name=tiny_config_name, pretrained=weights, precision="fp32")
    )
    assert encoder.identity["weights_file"] == weights
    assert encoder.identity["weights_sha256"] == tiny_encoder.identity["weights_sha256"]
    np.testing.assert_allclose(
        encoder.encode_images(jpegs), tiny_encoder.encode_images(jpegs), atol=1e-5
    )


def test_missing_weights_file_error_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "weights.safetensors"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        ClipEncoder.load(ModelSpec(pretrained=str(missing)))


def test_corrupt_weights_file_error_names_the_path(tiny_config_name, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match=str(corrupt)):
        ClipEncoder.load(ModelSpec(model_name=tiny_config_name, pretrained=str(corrupt)))


def test_unknown_tag_error_names_the_tag(tiny_config_name):
    with pytest.raises(WeightsError, match="no_such_tag"):
        ClipEncoder.load(ModelSpec(model_name=tiny_config_name, pretrained="no_such_tag"))


def test_device_preprocessing_embeds_like_the_pillow_path(tiny_spec, tiny_encoder, jpegs):
    """The GPU path's decode and batched resampling, run on the CPU through the encoder."""
    on_device = ClipEncoder.load(replace(tiny_spec, preprocess="device"))
    assert on_device.identity["preprocessing"]["implementation"].startswith("torchvision")
    assert tiny_encoder.identity["preprocessing"]["implementation"].startswith("Pillow")
    cosine = np.sum(on_device.encode_images(jpegs) * tiny_encoder.encode_images(jpegs), axis=1)
    assert cosine.min() >= 0.9999


def test_spec_rejects_unknown_device_and_precision(tiny_model_name):
    spec = ModelSpec(model_name=tiny_model_name, pretrained=None)
    for bad in ({"device": "tpu"}, {"precision": "int8"}, {"batch_size": 0}, {"preprocess": "gpu"}):
        with pytest.raises(ValueError):
            replace(spec, **bad)
