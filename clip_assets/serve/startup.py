"""Start the search service: load every CLIP model before the first query, say what is served.

``warm_up`` loads each distinct query model once (indices embedded by the same model share
it), runs one text and one image through it so the first real query pays no start-up cost
(tens of seconds for ViT-B-32 on a CPU), and says per model where it loaded and how long it
took, and per index its key, size, recall and mapping. ``serve`` is what ``clip-assets serve``
runs: warm up, build the app, bind, answer until stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from PIL import Image

from clip_assets.search.index_summary import summarize
from clip_assets.search.searcher import ClipSearcher
from clip_assets.serve.app import create_app
from clip_assets.serve.limits import Limits


class ModelUnavailable(RuntimeError):
    """An index's CLIP model would not load; the message names the index and the model."""


def warm_up(
    searchers: Mapping[str, ClipSearcher],
    say: Callable[[str], None] = print,
    *,
    load_models: bool = True,
) -> None:
    """Load the query models of ``searchers`` now and ``say`` what is served.

    With ``load_models`` false (a service for ``embedding_input`` queries only, say) models
    load on the first text or image query instead. Raises ``ModelUnavailable``.
    """
    if load_models:
        warmed: set[int] = set()
        for name, searcher in searchers.items():
            started = time.perf_counter()
            try:
                encoder = searcher.encoder
            except Exception as error:  # missing weights, unknown name, no such device, ...
                raise ModelUnavailable(
                    f"index {name!r}: the CLIP model {searcher.model.model_name} "
                    f"({searcher.model.pretrained}) could not be loaded: {error}"
                ) from error
            if id(encoder) in warmed:
                continue
            encoder.encode_texts(["a photo"])
            encoder.encode_pil([Image.new("RGB", (64, 64))])
            warmed.add(id(encoder))
            seconds = time.perf_counter() - started
            model = searcher.model
            say(
                f"model {model.model_name} ({model.pretrained or 'no pretrained tag'}) "
                f"loaded on {encoder.device} in {seconds:.1f} s"
            )
    else:
        say("models load on the first text or image query")
    for name, searcher in searchers.items():
        say(summarize(name, searcher).line())


def serve(
    searchers: Mapping[str, ClipSearcher],
    *,
    host: str = "127.0.0.1",
    port: int = 1234,
    limits: Limits | None = None,
    allow_private_urls: bool = False,
    load_models: bool = True,
    say: Callable[[str], None] = print,
) -> None:
    """Warm up, then serve ``searchers`` on ``host:port`` until interrupted."""
    import uvicorn

    warm_up(searchers, say, load_models=load_models)
    app = create_app(searchers, limits=limits, allow_private_urls=allow_private_urls)
    say(f"search page: http://{host}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level="info")
