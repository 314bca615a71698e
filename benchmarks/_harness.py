"""Shared pieces of the peer benchmarks: test images, the loopback image server, measurement.

Both tools of a benchmark run as child processes of the benchmark script, one after the other,
against the same files and the same server, and are measured the same way: wall time from
spawn to exit, and the peak memory of the whole process tree (worker processes included).

Run as a script it is the image server: ``python _harness.py serve DIR LATENCY`` serves every
``*.jpg`` of DIR under ``/img/<name>`` and prints the port on stdout. The server lives in its own
process so its work never shares a GIL with the tool being measured.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUR_PYTHON = REPO / ".venv" / "bin" / "python"
PEERS_PYTHON = REPO / "benchmarks" / ".peers-venv" / "bin" / "python"
CACHE = Path(os.environ.get("CLIP_ASSETS_BENCH_CACHE", "/tmp/clip-assets-bench"))

#: Environment for every tool run: no Hub traffic, no albumentations update check.
TOOL_ENV = {"HF_HUB_OFFLINE": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled"}


# --- test images ------------------------------------------------------------------------------


def web_like_jpeg(seed: int) -> bytes:
    """A photo-like JPEG of a web-like size: 100 to 1600 px wide (log-uniform), aspect 0.6
    to 1.6, about 5 to 300 KB.

    Content is a smooth random colour field, a coarser texture and fine grain, so it
    compresses (and decodes) like a photograph rather than like a flat synthetic picture.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    width = int(np.exp(rng.uniform(np.log(100), np.log(1600))))
    height = max(64, int(width / rng.uniform(0.6, 1.6)))

    def field(cell: int) -> Image.Image:
        cells = rng.integers(0, 256, (max(2, height // cell), max(2, width // cell), 3), np.uint8)
        return Image.fromarray(cells).resize((width, height), Image.BICUBIC)

    img = Image.blend(field(64), field(8), 0.25)
    # Small pictures get more grain, so they are not implausibly tiny files.
    grain = float(np.clip(6 * 800 / width, 6, 30))
    pixels = np.asarray(img, np.int16) + rng.normal(0, grain, (height, width, 3)).astype(np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=int(rng.integers(75, 92))
    )
    return buf.getvalue()


def image_pool(count: int, seed: int = 0) -> Path:
    """A folder of ``count`` distinct web-like JPEGs, generated once and cached under CACHE."""
    folder = CACHE / f"pool-{seed}-{count}"
    if (folder / "done").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{i:06d}.jpg").write_bytes(web_like_jpeg(seed * 1_000_003 + i))
    (folder / "done").write_text("ok")
    return folder


def write_url_list(path: Path, urls: Sequence[str], pool: Path) -> None:
    """A DataComp-like URL parquet: uid (md5 of caption + url), url, text, sha256 of the bytes
    each URL serves, original width/height. ``urls[i]`` serves pool image ``i % pool size``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    files = sorted(pool.glob("*.jpg"))
    facts = []
    for f in files:
        data = f.read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            facts.append((hashlib.sha256(data).hexdigest(), img.width, img.height))
    texts = [f"a photo number {i}" for i in range(len(urls))]
    rows = [facts[i % len(files)] for i in range(len(urls))]
    table = pa.table(
        {
            "uid": [
                hashlib.md5((t + u).encode()).hexdigest() for t, u in zip(texts, urls, strict=True)
            ],
            "url": list(urls),
            "text": texts,
            "original_width": pa.array([r[1] for r in rows], pa.int64()),
            "original_height": pa.array([r[2] for r in rows], pa.int64()),
            "sha256": [r[0] for r in rows],
        }
    )
    pq.write_table(table, path)


# --- the image server -------------------------------------------------------------------------


class ServerProcess:
    """``with ServerProcess(pool, latency_s) as srv: srv.url(i)``: the image server in a child
    process of our venv; ``url(i)`` serves pool image ``i % pool size`` under a unique path."""

    def __init__(self, pool: Path, latency_s: float) -> None:
        self.pool = pool
        self.latency_s = latency_s
        self.size = len(list(pool.glob("*.jpg")))
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port}/img/{i}/{i % self.size:06d}.jpg"

    def __enter__(self) -> ServerProcess:
        self._proc = subprocess.Popen(
            [str(OUR_PYTHON), __file__, "serve", str(self.pool), str(self.latency_s)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.terminate()
        self._proc.wait(timeout=10)


def _serve(folder: Path, latency_s: float) -> None:
    """Serves ``/img/<anything>/<name>.jpg`` from ``folder`` until terminated."""
    import signal

    from clip_assets.offline.image_server import ImageServer, image

    class _AnyPrefix(dict):
        # Every URL is unique (no tool may cache), but the bytes come from a fixed pool.
        def get(self, path: str, default: object = None) -> object:
            return super().get(path.rsplit("/", 1)[-1], default)

    routes = _AnyPrefix({f.name: image(f.read_bytes()) for f in sorted(folder.glob("*.jpg"))})
    server = ImageServer(latency_s=latency_s)
    server.routes = routes
    server.user_agents = _Discard()  # the server would otherwise keep one string per request
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(server.port, flush=True)
        stop.wait()


class _Discard(list):
    def append(self, item: object) -> None:
        pass


# --- measurement ------------------------------------------------------------------------------


@dataclass
class Measured:
    """What one tool run cost: wall seconds, CPU seconds (user + system) of its whole process
    tree, peak PSS and RSS of that tree (MB), and its stdout."""

    wall_s: float
    cpu_s: float
    peak_pss_mb: float
    peak_rss_mb: float
    stdout: str


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    return descendants(children, root)


def descendants(children: dict[int, list[int]], root: int) -> list[int]:
    """``root`` and every pid below it in a parent -> children map."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _memory_kb(pid: int) -> tuple[int, int]:
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def run_measured(cmd: Sequence[str], env: dict[str, str] | None = None, **kw: object) -> Measured:
    """Runs ``cmd`` to completion, polling its process tree's memory every 0.5 s.

    PSS (proportional set size) is the headline memory figure: it counts pages shared by forked
    workers once, where summing RSS would count them per process. Raises on a non-zero exit.
    """
    full_env = {**os.environ, **TOOL_ENV, **(env or {})}
    # Every descendant is waited for by its parent, so its CPU time lands in our children's
    # usage: CPU seconds are the contention-proof figure when other work shares the cores.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )
    peak = [0, 0]
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.5):
            pss = rss = 0
            for pid in _tree(proc.pid):
                p, r = _memory_kb(pid)
                pss, rss = pss + p, rss + r
            peak[0], peak[1] = max(peak[0], pss), max(peak[1], rss)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done.set()
    poller.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} exited {proc.returncode}:\n{stderr[-4000:]}")
    return Measured(wall, cpu, peak[0] / 1024, peak[1] / 1024, stdout)


def last_json(stdout: str) -> dict[str, object]:
    """The last line of ``stdout`` that parses as a JSON object (runners report that way)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON report in output:\n{stdout[-2000:]}")


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        _serve(Path(sys.argv[2]), float(sys.argv[3]))
    else:
        sys.exit(f"usage: {sys.argv[0]} serve DIR LATENCY_S")


def write_results(path: Path, args: object, results: object) -> None:
    """A benchmark's command-line arguments and results as JSON at ``path`` (``--json``)."""
    arguments = {key: str(value) for key, value in vars(args).items()}
    path.write_text(json.dumps({"args": arguments, "results": results}, indent=1))
