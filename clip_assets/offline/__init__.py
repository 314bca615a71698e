"""Offline stand-ins for the real world: an image server, image bytes, datasets and weights
used by the demo and the tests."""
