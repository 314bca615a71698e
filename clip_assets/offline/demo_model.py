"""The offline demo's CLIP model: trained once per recipe, cached, and put where open_clip looks.

Reads and writes ``<cache_dir>/<recipe digest>/``: an open_clip model folder
(``open_clip_config.json``, ``open_clip_model.safetensors``) plus ``training_report.json``
(what ``shapes_clip.evaluate`` measured). ``ensure_demo_model`` trains only when that folder is
missing; the folder appears by one rename, so an interrupted run leaves no half model behind.
``install_demo_model`` puts the folder's files in a Hugging Face cache as the ``main``
revision of ``DEMO_REPO``, so with ``HF_HOME`` pointing there and ``HF_HUB_OFFLINE=1`` the
production loading path loads ``hf-hub:<DEMO_REPO>`` as it would any Hub model (no download).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from clip_assets.offline.demo_names import DEMO_MODEL_NAME, DEMO_REPO
from clip_assets.offline.shapes_clip import ShapesRecipe, train_shapes_clip
from clip_assets.offline.weights import install_in_hub_cache

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
REPORT_NAME = "training_report.json"


@dataclass(frozen=True)
class DemoModel:
    """A trained model folder (``local-dir:<folder>`` loads it) and its training report."""

    folder: Path
    report: dict[str, Any]
    trained_now: bool

    @property
    def local_name(self) -> str:
        """The open_clip model name of the folder itself."""
        return f"local-dir:{self.folder}"


def ensure_demo_model(
    cache_dir: Path,
    recipe: ShapesRecipe | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> DemoModel:
    """The model of ``recipe`` from ``cache_dir``, trained and stored there first if absent."""
    recipe = recipe or ShapesRecipe()
    folder = Path(cache_dir) / recipe.digest()
    if (folder / REPORT_NAME).is_file():
        return DemoModel(folder, json.loads((folder / REPORT_NAME).read_text()), False)
    trained = train_shapes_clip(recipe, log=log)
    folder.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        config = {"model_cfg": recipe.model_cfg, "preprocess_cfg": recipe.preprocess_cfg()}
        (build / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        state = {k: v.detach().contiguous() for k, v in trained.model.state_dict().items()}
        save_file(state, str(build / WEIGHTS_NAME))
        (build / REPORT_NAME).write_text(json.dumps(trained.report, indent=2))
        build.replace(folder)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return DemoModel(folder, trained.report, True)


def install_demo_model(model: DemoModel, hf_home: Path) -> Path:
    """Put ``model`` in ``hf_home``'s Hub cache as ``DEMO_REPO`` (load it as
    ``DEMO_MODEL_NAME``); returns the snapshot folder."""
    files = [model.folder / CONFIG_NAME, model.folder / WEIGHTS_NAME]
    return install_in_hub_cache(hf_home, DEMO_REPO, files)


def prepare_demo_model(
    cache_dir: Path, hf_home: Path, log: Callable[[str], None] = lambda _: None
) -> DemoModel:
    """The demo's model, trained into ``cache_dir`` unless cached, installed in ``hf_home``."""
    recipe = ShapesRecipe()
    if not (Path(cache_dir) / recipe.digest() / REPORT_NAME).is_file():
        log(
            f"training the demo's CLIP model ({recipe.steps} steps on {recipe.threads} "
            "threads, about a minute; cached for the next run)"
        )
    model = ensure_demo_model(cache_dir, recipe, log=log)
    install_demo_model(model, hf_home)
    return model


def describe_demo_model(model: DemoModel) -> str:
    """What the demo says about the model it searches with."""
    report = model.report
    how = f"trained just now ({report['train_cpu_s']} CPU s)" if model.trained_now else "cached"
    held_out = ", ".join(" ".join(pair) for pair in report["held_out_pairs"])
    return (
        f"model: {DEMO_MODEL_NAME}, a small CLIP trained here on drawn scenes ({how}; "
        f"recipe {model.folder.name[:12]}), not ViT-B-32: production runs use ViT-B-32 / "
        f"laion2b_s34b_b79k.\n"
        f"  text-to-image precision@5: {report['seen_precision_at_5']:.2f} for the colour-shape "
        f"pairs it was trained on, {report['held_out_precision_at_5']:.2f} for those it never "
        f"saw drawn ({held_out}; chance is 0.06), "
        f"{report['held_out_phrasing_precision_at_5']:.2f} for captions it never read "
        f'({" and ".join(report["held_out_phrasings"])}, e.g. "red shapes on a black background")'
    )
