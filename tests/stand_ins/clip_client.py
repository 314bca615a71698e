"""What clip-retrieval's ClipClient sends, byte for byte, and a service to send it to.

``clip_client_body`` is the JSON ``ClipClient(url, indice_name).query(...)`` posts (every field,
in its order, with its constructor defaults, serialised by ``json.dumps``; see
clip_retrieval/clip_client.py); ``post_like_clip_client`` posts it as ClipClient does, with
``requests`` and no JSON content type. ``serve_on_loopback`` runs a Starlette app under uvicorn
on a free 127.0.0.1 port for the ``with`` block and yields its base URL.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
import uvicorn
from starlette.applications import Starlette


def clip_client_body(indice_name: str, **query: Any) -> str:
    """The body of ``ClipClient(url, indice_name).query(**query)``; ``query`` may also override
    constructor options (``deduplicate``, ``num_images``, ...)."""
    fields = {"text": None, "image": None, "image_url": None, "embedding_input": None}
    options = {
        "deduplicate": True,
        "use_safety_model": True,
        "use_violence_detector": True,
        "indice_name": indice_name,
        "use_mclip": False,
        "aesthetic_score": 9,
        "aesthetic_weight": 0.5,
        "modality": "image",
        "num_images": 40,
        "num_result_ids": 40,
        "verbose": False,
    }
    for key, value in query.items():
        (fields if key in fields else options)[key] = value
    return json.dumps({**fields, **options})


def post_like_clip_client(url: str, body: str) -> requests.Response:
    """``requests.post(url, data=body)``, as ClipClient calls it: no JSON content type."""
    prepared = requests.Request("POST", url, data=body).prepare()
    assert "Content-Type" not in prepared.headers
    assert prepared.body == body
    with requests.Session() as session:
        return session.send(prepared, timeout=60)


@contextmanager
def serve_on_loopback(app: Starlette) -> Iterator[str]:
    """``app`` under uvicorn on a free 127.0.0.1 port; yields ``http://127.0.0.1:<port>``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
