"""The production CLIP model, named once: what DataComp small's published index was embedded
with, and what every model setting (the resource, the query side, the CLI, the card) defaults to.
Kept free of heavy imports so the CLI and the search side can read it cheaply."""

DEFAULT_MODEL_NAME = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
