"""The embeddings stage as plain Python: load a CLIP model once, embed images and prompts.

``ClipEncoder.load(ModelSpec(...))`` loads a model (``load_count()`` counts loads);
``embed_images(images_table, encoder)`` turns an images partition into its embeddings table.
"""

from clip_assets.embed.embed_table import embed_images
from clip_assets.embed.encoder import ClipEncoder
from clip_assets.embed.model_loading import ModelSpec, WeightsError, load_count

__all__ = ["ClipEncoder", "ModelSpec", "WeightsError", "embed_images", "load_count"]
