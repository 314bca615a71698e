"""The HTTP service: clip-retrieval's back-end API over several ``ClipSearcher``s, plus a page.

Routes (as ``clip back`` serves them, so ``ClipClient`` and clip-retrieval's front end work
unchanged):

- ``POST /knn-service``: neighbours of a text, base64 image, image URL or embedding;
  a JSON array of ``{id, similarity, url, caption}``, best first. As in ``clip back``, up to
  ``num_result_ids`` results come back and only the first ``num_images`` carry url/caption.
  Options we do not have come back as ``Warning`` headers (see ``knn_request``).
- ``POST /metadata``: ``{ids, indice_name}`` -> ``[{id, metadata: {url, caption, uid}}]``.
- ``GET /indices-list``: the index names, exactly as ``clip back`` lists them.
- ``GET /health``: per index its key, size, recall, model and whether it is memory-mapped
  (``clip_assets.search.index_summary``), and how many queries run and wait.
- ``GET /``: a search page (``static/index.html``).

Every refused request gets a 4xx (or 503 when busy) and ``{"error": message}``. The two POST
routes take turns (``Admission``): at most ``Limits.max_running`` at once, ``max_waiting``
queued, the rest 503 with ``Retry-After``. Bodies must arrive within ``body_timeout_s``.
Model inference, decoding, fetching and faiss run off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from importlib import resources
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from clip_assets.download.decode_guard import ImageRefused
from clip_assets.search.index_summary import summarize
from clip_assets.search.query_image import FetchError, fetch_image_async
from clip_assets.search.searcher import ClipSearcher
from clip_assets.serve.admission import Admission
from clip_assets.serve.knn_request import (
    ApiError,
    KnnQuery,
    parse_json,
    parse_knn,
    parse_metadata,
)
from clip_assets.serve.limits import Limits


class SearchService:
    """Answers API requests against named searchers."""

    def __init__(
        self,
        searchers: Mapping[str, ClipSearcher],
        limits: Limits | None = None,
        allow_private_urls: bool = False,
    ) -> None:
        """``allow_private_urls`` lets ``image_url`` queries reach loopback/LAN hosts."""
        if not searchers:
            raise ValueError("serve at least one index")
        self.searchers = dict(searchers)
        self.limits = limits or Limits()
        self.allow_private_urls = allow_private_urls

    def pick(self, name: str | None) -> tuple[str, ClipSearcher]:
        """The searcher called ``name``; with one index, ``name`` may be omitted."""
        if name is None and len(self.searchers) == 1:
            name = next(iter(self.searchers))
        if name is None:
            raise ApiError(f"indice_name is required: one of {sorted(self.searchers)}")
        if name not in self.searchers:
            raise ApiError(f"unknown indice_name {name!r}: one of {sorted(self.searchers)}", 404)
        return name, self.searchers[name]

    async def knn(self, query: KnnQuery) -> tuple[list[dict[str, Any]], list[str]]:
        """Answer a parsed ``/knn-service`` query: the results and the notices to send."""
        name, searcher = self.pick(query.indice_name)
        if query.modality == "text":
            raise ApiError(
                f"index {name!r} holds image embeddings only; search it with modality 'image' "
                "(a text query with modality 'image' finds images matching the text)"
            )
        embedding = await self._embed(searcher, query)
        try:
            results = await run_in_threadpool(
                searcher.search, embedding, query.num_result_ids, deduplicate=query.deduplicate
            )
        except ValueError as error:  # an all-zero embedding_input, for one
            raise ApiError(str(error)) from error
        answer = []
        for rank, result in enumerate(results[0]):
            item: dict[str, Any] = {"id": result.id, "similarity": result.similarity}
            if rank < query.num_images:
                item.update(url=result.url, caption=result.caption)
            answer.append(item)
        notices = list(query.notices)
        if query.deduplicate and searcher.dedup_method == "url":
            notices.append(
                f"index {name!r} cannot give its vectors back, so deduplicate removed "
                "repeated urls only, not near-duplicate images"
            )
        return answer, notices

    def metadata(self, ids: list[int], name: str | None) -> list[dict[str, Any]]:
        """Answer ``/metadata``."""
        _, searcher = self.pick(name)
        try:
            metas = searcher.metadata(ids)
        except KeyError as error:
            raise ApiError(str(error.args[0]), 404) from error
        return [{"id": i, "metadata": meta} for i, meta in zip(ids, metas, strict=True)]

    def health(self) -> dict[str, Any]:
        """Each index's figures (key, size, recall, model) and whether its model is loaded."""
        return {
            "status": "ok",
            "indices": [
                {**summarize(name, s).to_dict(), "model_loaded": s.encoder_loaded}
                for name, s in self.searchers.items()
            ],
        }

    async def _embed(self, searcher: ClipSearcher, query: KnnQuery) -> np.ndarray:
        if query.embedding is not None:
            if len(query.embedding) != searcher.dim:
                raise ApiError(
                    f"embedding_input has {len(query.embedding)} values; "
                    f"this index needs {searcher.dim}"
                )
            return np.asarray(query.embedding, dtype=np.float32)
        encoder = await run_in_threadpool(_encoder, searcher)
        if query.text is not None:
            return await run_in_threadpool(encoder.encode_texts, [query.text])
        image = query.image
        if image is None:
            image = await self._fetch(query.image_url or "")
        try:
            return await run_in_threadpool(searcher.embed_images, [image], self.limits.max_pixels)
        except ImageRefused as error:
            status = 413 if error.reason == "decompression_bomb" else 400
            raise ApiError(str(error), status) from error

    async def _fetch(self, url: str) -> bytes:
        try:
            return await fetch_image_async(
                url,
                max_bytes=self.limits.max_image_bytes,
                deadline_s=self.limits.fetch_deadline_s,
                allow_private=self.allow_private_urls,
            )
        except FetchError as error:
            status = 413 if "limit" in str(error) else 400
            raise ApiError(f"image_url: {error}", status) from error


def _encoder(searcher: ClipSearcher) -> Any:
    try:
        return searcher.encoder
    except Exception as error:  # missing weights, unknown model name, ...: not the caller's fault
        raise ApiError(
            f"the CLIP model {searcher.model} could not be loaded: {error}", 503
        ) from error


def create_app(
    searchers: Mapping[str, ClipSearcher],
    *,
    limits: Limits | None = None,
    allow_private_urls: bool = False,
) -> Starlette:
    """The Starlette app serving ``searchers`` by name."""
    service = SearchService(searchers, limits, allow_private_urls)
    bounds = service.limits
    admission = Admission(bounds.max_running, bounds.max_waiting, bounds.retry_after_s)
    page = resources.files("clip_assets.serve").joinpath("static/index.html").read_text("utf-8")

    async def body(request: Request) -> dict[str, Any]:
        try:
            data = await asyncio.wait_for(_read_body(request, bounds), bounds.body_timeout_s)
        except asyncio.TimeoutError as error:
            raise ApiError(
                f"the request body did not arrive within {bounds.body_timeout_s:g} s", 408
            ) from error
        return parse_json(data, bounds)

    async def knn_service(request: Request) -> Response:
        async with admission.turn():
            query = parse_knn(await body(request), bounds)
            answer, notices = await service.knn(query)
        response = JSONResponse(answer)
        for notice in notices:
            response.headers.append("Warning", _warning(notice))
        return response

    async def metadata(request: Request) -> Response:
        async with admission.turn():
            ids, name = parse_metadata(await body(request))
            return JSONResponse(await run_in_threadpool(service.metadata, ids, name))

    async def indices_list(request: Request) -> Response:
        return JSONResponse(list(service.searchers))

    async def health(request: Request) -> Response:
        report = await run_in_threadpool(service.health)
        return JSONResponse({**report, "queries": admission.stats()})

    async def index_page(request: Request) -> Response:
        return HTMLResponse(page)

    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return JSONResponse({"error": error.message}, error.status, headers=error.headers)

    return Starlette(
        routes=[
            Route("/", index_page, methods=["GET"]),
            Route("/knn-service", knn_service, methods=["POST"]),
            Route("/metadata", metadata, methods=["POST"]),
            Route("/indices-list", indices_list, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        # clip-retrieval's front end is served from another origin and calls us from the browser.
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["GET", "POST"],
                allow_headers=["Content-Type"],
                expose_headers=["Warning", "Retry-After"],
            )
        ],
        exception_handlers={ApiError: api_error},
    )


def _warning(notice: str) -> str:
    """An RFC 7234 ``Warning`` value (code 299: a lasting caveat), ASCII whatever the notice
    quotes (an index name, say)."""
    text = notice.encode("ascii", "backslashreplace").decode("ascii")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 clip-assets "{escaped}"'


async def _read_body(request: Request, limits: Limits) -> bytes:
    too_big = ApiError(f"request body is over {limits.max_body_bytes} bytes", 413)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise too_big
    # Counted as the bytes arrive: a chunked body declares no length up front.
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limits.max_body_bytes:
            raise too_big
    return bytes(data)
