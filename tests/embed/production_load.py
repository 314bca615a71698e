"""Run by test_embed_production_weights in a fresh process whose environment sets HF_HOME and
HF_HUB_OFFLINE (huggingface_hub reads both once, at import). Prints one JSON report.

argv: snapshot path written by install_pretrained_standin, then JPEG files to embed.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors.torch import load_file

from clip_assets.embed import ClipEncoder, ModelSpec


def main() -> None:
    snapshot, *image_paths = sys.argv[1:]
    jpegs = [Path(p).read_bytes() for p in image_paths]
    encoder = ClipEncoder.load(ModelSpec(batch_size=2))  # the production default, unchanged

    # The model built directly from the saved state, preprocessed by open_clip itself.
    direct, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    direct.load_state_dict(load_file(snapshot))
    direct.eval()
    with torch.inference_mode():
        pixels = torch.stack([preprocess(Image.open(io.BytesIO(data))) for data in jpegs])
        direct_out = direct.encode_image(pixels)
        ours_same_input = encoder._model.encode_image(pixels)
    reference = torch.nn.functional.normalize(direct_out, dim=-1).numpy()
    loaded_state = encoder._model.state_dict()
    print(
        json.dumps(
            {
                "offline": huggingface_hub.constants.HF_HUB_OFFLINE,
                "identity": encoder.identity,
                "state_equal": all(
                    torch.equal(value, loaded_state[key])
                    for key, value in load_file(snapshot).items()
                ),
                "max_abs_diff_same_input": float((ours_same_input - direct_out).abs().max()),
                "cosine_vs_open_clip": np.sum(
                    encoder.encode_images(jpegs) * reference, axis=1
                ).tolist(),
            }
        )
    )


if __name__ == "__main__":
    main()
