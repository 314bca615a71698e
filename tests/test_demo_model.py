"""The demo's trained CLIP: deterministic, refused when it did not learn, cached by recipe, and
loaded offline through the production path from a Hugging Face cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from clip_assets.embed.checkpoint import sha256_file
from clip_assets.embed.encoder import ClipEncoder
from clip_assets.embed.model_loading import ModelSpec
from clip_assets.offline.demo_model import (
    DEMO_MODEL_NAME,
    WEIGHTS_NAME,
    DemoModel,
    ensure_demo_model,
    install_demo_model,
)
from clip_assets.offline.scene_query import query_description
from clip_assets.offline.scenes import (
    HELD_OUT_PHRASINGS,
    TRAINING_PHRASINGS,
    Scene,
    all_scenes,
    phrasing_queries,
)
from clip_assets.offline.shapes_clip import DidNotLearn, ShapesRecipe, train_shapes_clip

#: A few steps of the real recipe: enough to test the machinery, not to learn anything.
QUICK = ShapesRecipe(steps=3, batch_size=8, min_seen_precision=0.0)


def test_same_recipe_same_weights_and_the_caller_state_is_kept() -> None:
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    first = train_shapes_clip(QUICK).model.state_dict()
    after_first = torch.rand(1)
    torch.manual_seed(123)
    second = train_shapes_clip(QUICK).model.state_dict()
    assert torch.equal(torch.rand(1), after_first)  # the caller's RNG stream is untouched
    assert torch.get_num_threads() == threads
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    reseeded = ShapesRecipe(steps=3, batch_size=8, seed=1, min_seen_precision=0.0)
    other = train_shapes_clip(reseeded).model.state_dict()
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_a_model_that_did_not_learn_is_refused() -> None:
    with pytest.raises(DidNotLearn, match="did not learn: colour-shape queries seen in training"):
        train_shapes_clip(ShapesRecipe(steps=2, batch_size=8, min_seen_precision=0.95))


def test_the_digest_names_recipe_and_code() -> None:
    assert ShapesRecipe().digest() == ShapesRecipe().digest()
    assert ShapesRecipe(steps=301).digest() != ShapesRecipe().digest()
    assert QUICK.digest() != ShapesRecipe().digest()


@pytest.fixture(scope="module")
def quick_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoModel]:
    """A cache folder holding the QUICK model, trained into it once for this module."""
    cache = tmp_path_factory.mktemp("demo-models")
    return cache, ensure_demo_model(cache, QUICK)


def test_the_cache_trains_once_per_recipe(quick_cache: tuple[Path, DemoModel]) -> None:
    cache, first = quick_cache
    again = ensure_demo_model(cache, QUICK)
    assert first.trained_now and not again.trained_now
    assert first.folder == again.folder == cache / QUICK.digest()
    assert again.report == first.report
    assert sorted(p.name for p in cache.iterdir()) == [QUICK.digest()]  # no temp folder


def test_installed_model_loads_offline_through_the_production_path(
    quick_cache: tuple[Path, DemoModel], tmp_path: Path
) -> None:
    """``hf-hub:`` from a Hugging Face cache, as the demo's pipeline process loads it, gives
    the vectors of the cached folder itself."""
    model = quick_cache[1]
    hf_home = tmp_path / "hf_home"
    install_demo_model(model, hf_home)
    code = (
        "import json, sys\n"
        "from clip_assets.embed.encoder import ClipEncoder\n"
        "from clip_assets.embed.model_loading import ModelSpec\n"
        f"encoder = ClipEncoder.load(ModelSpec({DEMO_MODEL_NAME!r}, None, device='cpu'))\n"
        "vectors = encoder.encode_texts(['two red circles', 'a blue square'])\n"
        "print(json.dumps({'identity': encoder.identity, 'vectors': vectors.tolist()}))\n"
    )
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    weights = model.folder / WEIGHTS_NAME
    assert report["identity"]["model"] == DEMO_MODEL_NAME
    assert report["identity"]["weights_sha256"] == sha256_file(weights)
    assert Path(report["identity"]["weights_file"]).is_relative_to(hf_home)
    local = ClipEncoder.load(ModelSpec(model.local_name, None, device="cpu", num_workers=0))
    expected = local.encode_texts(["two red circles", "a blue square"])
    np.testing.assert_allclose(np.array(report["vectors"]), expected, atol=1e-5)


def test_a_query_names_what_a_picture_must_show() -> None:
    """The demo marks a result by the scene drawn at its URL against what the query names."""
    asked = query_description("A picture of two red circles on a gray background")
    assert asked is not None
    assert asked.is_true_of(Scene(2, "red", "circle", "gray"))
    assert not asked.is_true_of(Scene(2, "red", "circle", "white"))
    assert not asked.is_true_of(Scene(3, "red", "circle", "gray"))
    red_circles = query_description("a picture of red circles")
    assert red_circles is not None
    assert red_circles.is_true_of(Scene(1, "red", "circle", "black"))
    assert not red_circles.is_true_of(Scene(1, "red", "square", "black"))
    assert query_description("a photo of a cat") is None


def test_held_out_phrasings_are_never_training_texts() -> None:
    """No training text names a held-out combination, yet every value of it has queries."""
    trained = {d.text for scene in all_scenes() for d in scene.descriptions()}
    examples = {
        ("colour", "background"): "red shapes on a black background",
        ("shape", "background"): "circles on a gray background",
    }
    assert set(HELD_OUT_PHRASINGS) == set(examples)
    for named in HELD_OUT_PHRASINGS:
        assert named not in TRAINING_PHRASINGS
        texts = [q.text for q in phrasing_queries(named)]
        assert len(texts) == len(set(texts)) > 1 and examples[named] in texts
        assert not set(texts) & trained
