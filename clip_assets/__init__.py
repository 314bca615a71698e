"""clip-assets: a Dagster asset graph from an image-URL dataset to a published CLIP index."""

__version__ = "0.1.0"
