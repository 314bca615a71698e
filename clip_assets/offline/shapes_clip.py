"""A small CLIP trained here, contrastively, on drawn scenes: the offline demo's model.

Reads nothing but its ``ShapesRecipe``. ``train_shapes_clip`` trains an open_clip ``CLIP`` of
the recipe's architecture (ViT-B-32's input size, preprocessing, tokenizer and 512-d output) on
scenes drawn on the fly, every caption true of its picture, with some colour-shape pairs held out
of training; a batch's loss treats every text true of a picture as a positive of it, not only
its own caption. ``evaluate`` measures text-to-image retrieval on a gallery of every scene,
freshly drawn: the seen pairs' precision@5 says whether the model learned what it was shown
(the demo's searches rely on it); the held-out phrasings' (attribute combinations no training
text names, ``scenes.HELD_OUT_PHRASINGS``) whether it composes a caption it never read (the
semantic end-to-end test relies on it); the held-out pairs' whether it composes colour and
shape it never saw together in a picture (it does not: about chance, 1/18, with this recipe;
reported, not required).
Guarantees: the same recipe on the same machine gives the same weights (seeded, a fixed number
of torch threads, deterministic algorithms; the caller's RNG state and thread count are
restored); ``train_shapes_clip`` raises ``DidNotLearn`` when the seen pairs' precision falls
short of the recipe's floor, so a bad model never reaches the demo.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.tokenizer import SimpleTokenizer
from torch.nn import functional as F

from clip_assets.offline import scenes as scene_module
from clip_assets.offline.scenes import (
    COLOURS,
    HELD_OUT_PHRASINGS,
    SHAPES,
    Description,
    Scene,
    all_scenes,
    describe,
    phrasing_queries,
)

#: Pairs never drawn in training: the figure of composition the report carries.
HELD_OUT_PAIRS = (
    ("red", "triangle"),
    ("green", "circle"),
    ("blue", "square"),
    ("purple", "circle"),
)
IMAGE_SIZE = 224  # ViT-B-32's input, so the production preprocessing applies unchanged
EVAL_K = 5


def _model_cfg() -> dict[str, Any]:
    return {
        "embed_dim": 512,
        "vision_cfg": {
            "image_size": IMAGE_SIZE,
            "layers": 2,
            "width": 96,
            "head_width": 32,
            "patch_size": 32,
            "pool_type": "avg",
        },
        "text_cfg": {
            "context_length": 20,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    }


@dataclass(frozen=True)
class ShapesRecipe:
    """Everything that decides the weights; ``digest`` names them in caches."""

    steps: int = 600
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 20
    weight_decay: float = 0.1
    seed: int = 0
    threads: int = 2
    held_out: tuple[tuple[str, str], ...] = HELD_OUT_PAIRS
    #: The least mean precision@5 of seen colour-shape pair queries a trained model must reach.
    min_seen_precision: float = 0.8
    model_cfg: dict[str, Any] = field(default_factory=_model_cfg)

    def digest(self) -> str:
        """SHA-256 of the recipe, the code that draws and trains, and the library versions."""
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        for module in (scene_module.__file__, __file__):
            h.update(Path(module).read_bytes())
        h.update(f"torch {torch.__version__} open_clip {version('open_clip_torch')}".encode())
        return h.hexdigest()

    def preprocess_cfg(self) -> dict[str, Any]:
        """ViT-B-32's: resize the shortest side to 224, centre crop, OpenAI mean and std."""
        return {
            "size": self.model_cfg["vision_cfg"]["image_size"],
            "mean": list(open_clip.OPENAI_DATASET_MEAN),
            "std": list(open_clip.OPENAI_DATASET_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        }


class DidNotLearn(RuntimeError):
    """Training ended with seen-pair retrieval below the recipe's floor."""


@dataclass(frozen=True)
class Trained:
    """The trained model (eval mode) and what ``evaluate`` measured of it."""

    model: open_clip.CLIP
    report: dict[str, Any]


def train_shapes_clip(recipe: ShapesRecipe, log: Callable[[str], None] = lambda _: None) -> Trained:
    """Train the recipe's model; raises ``DidNotLearn`` below ``min_seen_precision``."""
    with _deterministic(recipe.threads):
        torch.manual_seed(recipe.seed)
        model = open_clip.CLIP(**recipe.model_cfg)
        # Random token vectors are distinct enough to tell words apart; not training the
        # 49,408-row table saves most of the optimiser's work.
        model.token_embedding.requires_grad_(False)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(
            trainable, lr=recipe.learning_rate, weight_decay=recipe.weight_decay, betas=(0.9, 0.98)
        )
        tokenizer = SimpleTokenizer(context_length=recipe.model_cfg["text_cfg"]["context_length"])
        held_out = set(recipe.held_out)
        pool = [s for s in all_scenes() if (s.colour, s.shape) not in held_out]
        rng = np.random.default_rng(recipe.seed)
        started = time.process_time()
        model.train()
        for step in range(recipe.steps):
            for group in optimiser.param_groups:
                group["lr"] = _learning_rate(recipe, step)
            images, texts, truth = _batch(pool, recipe.batch_size, rng)
            image_features, text_features, logit_scale = model(images, tokenizer(texts))[:3]
            loss = _multi_positive_loss(logit_scale * image_features @ text_features.T, truth)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            if step % 100 == 0 or step == recipe.steps - 1:
                log(f"step {step + 1}/{recipe.steps}: loss {loss.item():.3f}")
        model.eval()
        report = evaluate(model, tokenizer, recipe)
        report["train_cpu_s"] = round(time.process_time() - started, 1)
    if report["seen_precision_at_5"] < recipe.min_seen_precision:
        raise DidNotLearn(
            f"the demo model did not learn: colour-shape queries seen in training reach "
            f"precision@5 {report['seen_precision_at_5']:.2f}, below {recipe.min_seen_precision} "
            f"({report['by_query']})"
        )
    return Trained(model, report)


def evaluate(model: open_clip.CLIP, tokenizer: SimpleTokenizer, recipe: ShapesRecipe) -> dict:
    """Text-to-image precision@5 on a gallery of every scene twice (fixed seeds): per query,
    the held-out phrasings', the held-out and the seen colour-shape pairs' means."""
    gallery = [scene for scene in all_scenes() for _ in range(2)]
    rng = np.random.default_rng(10_000 + recipe.seed)
    with torch.no_grad():
        vectors = torch.cat(
            [
                model.encode_image(_pixels(gallery[i : i + 64], rng), normalize=True)
                for i in range(0, len(gallery), 64)
            ]
        )
        held_out = [describe(colour=c, shape=s) for c, s in recipe.held_out]
        seen = [
            describe(colour=c, shape=s)
            for c in COLOURS
            for s in SHAPES
            if (c, s) not in set(recipe.held_out)
        ]
        phrased = [q for named in HELD_OUT_PHRASINGS for q in phrasing_queries(named)]
        precision = {
            q.text: _precision(model, tokenizer, vectors, gallery, q)
            for q in held_out + seen + phrased
        }
    return {
        "held_out_phrasing_precision_at_5": _mean([precision[q.text] for q in phrased]),
        "held_out_precision_at_5": _mean([precision[q.text] for q in held_out]),
        "seen_precision_at_5": _mean([precision[q.text] for q in seen]),
        "by_query": precision,
        "held_out_pairs": [list(pair) for pair in recipe.held_out],
        "held_out_phrasings": [" + ".join(named) for named in HELD_OUT_PHRASINGS],
        "steps": recipe.steps,
    }


def _precision(
    model: open_clip.CLIP,
    tokenizer: SimpleTokenizer,
    vectors: torch.Tensor,
    gallery: list[Scene],
    query: Description,
) -> float:
    text = model.encode_text(tokenizer([query.text]), normalize=True)
    top = (vectors @ text.T).squeeze(1).topk(EVAL_K).indices.tolist()
    return sum(query.is_true_of(gallery[i]) for i in top) / EVAL_K


def _batch(
    pool: list[Scene], size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """Pictures, one true description each, and which texts are true of which pictures."""
    chosen = [pool[i] for i in rng.integers(0, len(pool), size)]
    descriptions = []
    for scene in chosen:
        options = scene.descriptions()
        descriptions.append(options[rng.integers(0, len(options))])
    truth = torch.tensor([[d.is_true_of(s) for d in descriptions] for s in chosen])
    return _pixels(chosen, rng), [d.text for d in descriptions], truth.float()


def _pixels(chosen: list[Scene], rng: np.random.Generator) -> torch.Tensor:
    """Scenes drawn at the model's input size and normalised as the production transform does."""
    arrays = np.stack(
        [
            np.asarray(scene_module.draw_scene(s, IMAGE_SIZE, IMAGE_SIZE, int(rng.integers(2**31))))
            for s in chosen
        ]
    )
    pixels = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def _multi_positive_loss(logits: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE whose targets spread over every true pairing (each row has its own)."""
    to_text = -(F.log_softmax(logits, 1) * truth / truth.sum(1, keepdim=True)).sum(1).mean()
    to_image = -(F.log_softmax(logits.T, 1) * truth.T / truth.T.sum(1, keepdim=True)).sum(1)
    return (to_text + to_image.mean()) / 2


def _learning_rate(recipe: ShapesRecipe, step: int) -> float:
    warmup = min(1.0, (step + 1) / max(1, recipe.warmup_steps))
    return recipe.learning_rate * warmup * 0.5 * (1 + math.cos(math.pi * step / recipe.steps))


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


@contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    """Fixed threads, deterministic kernels and a private RNG stream for the block."""
    previous_threads = torch.get_num_threads()
    previous_mode = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.use_deterministic_algorithms(previous_mode)
        torch.set_num_threads(previous_threads)
