"""Parse and validate the JSON bodies of clip-retrieval's back-end API.

``ClipClient`` posts ``json.dumps({...})`` without a JSON content type and clip-retrieval's front
end posts a text/plain string, so bodies are parsed whatever the content type says. Field names,
defaults and the query-input priority (text, then image, then image_url, then embedding_input)
follow ``clip back``.

Features ``clip back`` has and we do not are never silently ignored. ``use_mclip`` on a text
query is refused (the text would be embedded by another model than the caller asked for). The
filters (``use_safety_model``, ``use_violence_detector``) and aesthetic re-ranking
(``aesthetic_score``, ``aesthetic_weight``) become ``notices``, sent as ``Warning`` headers
beside the normal answer: ClipClient turns them all on by default and reads only the body, so
refusing them would break every default ClipClient query. ``verbose`` changes nothing in
``clip back`` either.

Anything malformed raises ``ApiError`` with a 4xx status and a message that names the field:
numbers out of range (``1e400``, integers beyond 64 bits, NaN), nesting deeper than Python's
parser goes, and every field of the wrong type.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, replace
from typing import Any

from clip_assets.serve.limits import Limits

#: ClipClient's default page size, used when a body omits ``num_images``.
DEFAULT_NUM_IMAGES = 40
#: Integers must fit 64 bits (faiss ids do); longer digit strings are refused unparsed.
_INT_BOUND = 2**63
_MAX_INT_DIGITS = 20


class ApiError(Exception):
    """A request the service cannot answer; ``status`` is the HTTP code (4xx: the caller's
    fault, 503: ours, e.g. the model would not load)."""

    def __init__(
        self, message: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class KnnQuery:
    """One ``/knn-service`` request: exactly one query input is set."""

    indice_name: str | None
    text: str | None = None
    image: bytes | None = None
    image_url: str | None = None
    embedding: list[float] | None = None
    modality: str = "image"
    num_images: int = DEFAULT_NUM_IMAGES
    num_result_ids: int = DEFAULT_NUM_IMAGES
    deduplicate: bool = False
    notices: tuple[str, ...] = ()


def parse_json(body: bytes, limits: Limits) -> dict[str, Any]:
    """The JSON object in ``body``, whatever the content type; ``ApiError`` otherwise."""
    if len(body) > limits.max_body_bytes:
        raise ApiError(f"request body is over {limits.max_body_bytes} bytes", 413)
    try:
        data = json.loads(
            body, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant
        )
    except RecursionError as error:
        raise ApiError("request body is nested too deeply to be a query") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(f"request body is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise ApiError("request body must be a JSON object")
    return data


def parse_knn(data: dict[str, Any], limits: Limits) -> KnnQuery:
    """Validate a ``/knn-service`` body."""
    text = _optional(data, "text", str) or None
    image = _optional(data, "image", str) or None
    image_url = _optional(data, "image_url", str) or None
    embedding = _optional(data, "embedding_input", list)
    if text is None and image is None and image_url is None and not embedding:
        raise ApiError("give one of text, image (base64), image_url or embedding_input")
    modality = _optional(data, "modality", str) or "image"
    if modality not in ("image", "text"):
        raise ApiError(f"modality must be 'image' or 'text', not {modality!r}")
    num_images = _count(data, "num_images", DEFAULT_NUM_IMAGES, limits)
    query = KnnQuery(
        indice_name=_optional(data, "indice_name", str),
        modality=modality,
        num_images=num_images,
        num_result_ids=max(num_images, _count(data, "num_result_ids", num_images, limits)),
        deduplicate=bool(_optional(data, "deduplicate", bool)),
        notices=_unsupported(data, text_query=text is not None),
    )
    # clip back's priority when several inputs are set: text, image, image_url, embedding.
    if text is not None:
        return replace(query, text=text)
    if image is not None:
        return replace(query, image=decode_image(image, limits))
    if image_url is not None:
        return replace(query, image_url=image_url)
    return replace(query, embedding=_floats(embedding or []))


def _unsupported(data: dict[str, Any], text_query: bool) -> tuple[str, ...]:
    """Notices for the ``clip back`` options this service does not have; refuses the one
    that would change what a text query means."""
    notices = []
    if _optional(data, "use_mclip", bool):
        if text_query:
            raise ApiError(
                "use_mclip is not supported: this service has no multilingual text model and "
                "embeds text with the index's own CLIP model; send use_mclip false "
                "(ClipClient(..., use_mclip=False))"
            )
        notices.append("use_mclip only applies to text queries; ignored for this query")
    for name, what in (("use_safety_model", "unsafe"), ("use_violence_detector", "violent")):
        if _optional(data, name, bool):
            notices.append(
                f"{name} is not supported here: results are not filtered for {what} images"
            )
    aesthetic = [_aesthetic(data, name) for name in ("aesthetic_score", "aesthetic_weight")]
    if any(value is not None for value in aesthetic):
        notices.append(
            "aesthetic_score and aesthetic_weight are not supported here: "
            "results are ranked by similarity alone"
        )
    return tuple(notices)


def _aesthetic(data: dict[str, Any], name: str) -> float | None:
    """``clip back`` takes a number, a numeric string or "" (unset) here."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ApiError(f"{name} must be a number, not {data.get(name)!r}")
    return float(value)


def decode_image(value: str, limits: Limits) -> bytes:
    """Bytes of a base64 image; a ``data:...;base64,`` prefix (from a browser) is allowed."""
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    if len(value) > limits.max_image_bytes * 4 // 3 + 4:
        raise ApiError(f"image is over the {limits.max_image_bytes}-byte limit", 413)
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ApiError(f"image is not valid base64: {error}") from error
    if not data:
        raise ApiError("image is empty")
    return data


def parse_metadata(data: dict[str, Any]) -> tuple[list[int], str | None]:
    """Validate a ``/metadata`` body: ``ids`` (a list of integers) and ``indice_name``."""
    ids = data.get("ids")
    if not isinstance(ids, list) or not all(_is_int(i) for i in ids):
        raise ApiError("ids must be a list of integers")
    return ids, _optional(data, "indice_name", str)


def _optional(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if value is not None and not isinstance(value, kind):
        raise ApiError(f"{name} must be a {_KIND_NAMES[kind]}, not {type(value).__name__}")
    return value


def _count(data: dict[str, Any], name: str, default: int, limits: Limits) -> int:
    value = data.get(name)
    if value is None:
        return default
    if not _is_int(value) or not 1 <= value <= limits.max_k:
        raise ApiError(f"{name} must be an integer from 1 to {limits.max_k}, not {value!r}")
    return int(value)


def _floats(values: list[Any]) -> list[float]:
    # Every number here is finite and fits 64 bits (see ``parse_json``), so float() is exact
    # enough and cannot overflow.
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ApiError("embedding_input must be a flat list of numbers")
    return [float(v) for v in values]


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) <= _MAX_INT_DIGITS:
        value = int(text)
        if -_INT_BOUND <= value < _INT_BOUND:
            return value
    raise ApiError(f"integer {_shorten(text)} is out of range (64-bit integers only)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ApiError(f"number {_shorten(text)} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ApiError(f"{name} is not a number a query may hold")


def _shorten(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_KIND_NAMES = {str: "string", list: "list", bool: "boolean"}
