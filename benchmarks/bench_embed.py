"""Our embeddings stage vs clip-retrieval's ``clip_inference``: same images, same weights, one run.

The images are what our images stage stores: ``--n`` photo-like JPEGs of web-like sizes, downloaded
by ``download_shard_to_file`` from a loopback server (no latency) and so resized to a 256 px
shortest side, JPEG quality 95. Ours reads that images table; clip-retrieval reads the same JPEG
bytes written as a folder of files (``input_format=files``).

The model is ViT-B-32 with seeded random weights saved as the real checkpoint of
``laion2b_s34b_b79k`` in a temporary ``HF_HOME``: ours loads it by its production tag,
clip-retrieval by the checkpoint file path (``open_clip:ViT-B-32/<path>``). Both run with
``HF_HUB_OFFLINE=1``, the same batch size and the same number of preprocessing workers
(threads for us, DataLoader processes for clip-retrieval).

Prints images/s over the whole command (spawn to exit, model load included) and over the
embedding loop alone, peak memory of the process tree, the ratio, and the cosine between the
two tools' embeddings of each image (a check that both ran the same model on the same pixels).

    .venv/bin/python benchmarks/bench_embed.py --n 1000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import _harness as h
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass
class Result:
    """One tool run."""

    tool: str
    config: str
    n: int
    wall_s: float
    cpu_s: float
    loop_s: float
    peak_pss_mb: float
    peak_rss_mb: float

    def row(self) -> list[object]:
        return [
            self.tool,
            self.config,
            self.n,
            f"{self.n / self.wall_s:.1f}",
            f"{self.n / self.loop_s:.1f}",
            f"{self.n / self.cpu_s:.1f}",
            f"{self.peak_pss_mb:.0f}",
            f"{self.peak_rss_mb:.0f}",
        ]


HEADER = [
    "tool",
    "config",
    "images",
    "img/s",
    "img/s loop",
    "img/CPU-s",
    "peak PSS MB",
    "peak RSS MB",
]


def stored_images(n: int, pool: Path, source: str) -> pa.Table:
    """``n`` rows as our images stage stores them (IMAGES_SCHEMA), all status ok."""
    if source == "stage":
        from clip_assets.download.download_settings import DownloadSettings
        from clip_assets.download.shard_download import download_shard_to_file
        from clip_assets.schemas import METADATA_SCHEMA

        with h.ServerProcess(pool, latency_s=0.0) as server:
            urls = [server.url(i) for i in range(n)]
            metadata = pa.table(
                {
                    "uid": [f"{i:032x}" for i in range(n)],
                    "url": urls,
                    "source_file": ["bench"] * n,
                    "source_row": list(range(n)),
                }
            )
            metadata = pa.table(
                {
                    f.name: metadata.column(f.name)
                    if f.name in metadata.column_names
                    else pa.nulls(n, f.type)
                    for f in METADATA_SCHEMA
                },
                schema=METADATA_SCHEMA,
            )
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "images.parquet"
                settings = DownloadSettings(allowed_hosts=("127.0.0.1",))
                download_shard_to_file(metadata, settings, path)
                images = pq.read_table(path)
        statuses = images.column("status").to_pylist()
        if statuses.count("ok") != n:
            raise RuntimeError(f"images stage stored {statuses.count('ok')} of {n} images")
        return images
    # --source resize: the same resize as the images stage's defaults, done here with Pillow.
    from PIL import Image

    from clip_assets.schemas import IMAGES_SCHEMA

    files = sorted(pool.glob("*.jpg"))
    blobs = []
    for i in range(n):
        with Image.open(files[i % len(files)]) as img:
            scale = 256 / min(img.size)
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            buf = io.BytesIO()
            img.convert("RGB").resize(size, Image.LANCZOS).save(buf, "JPEG", quality=95)
            blobs.append(buf.getvalue())
    columns = {"uid": [f"{i:032x}" for i in range(n)], "status": ["ok"] * n, "image": blobs}
    return pa.table(
        {
            f.name: pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type)
            for f in IMAGES_SCHEMA
        },
        schema=IMAGES_SCHEMA,
    )


def run_ours(
    images: Path, out: Path, args: argparse.Namespace, hf_home: Path, precision: str
) -> Result:
    """Our encoder + ``embed_images`` in a child process of our venv, production tag."""
    spec = {
        "model_name": "ViT-B-32",
        "pretrained": "laion2b_s34b_b79k",
        "device": args.device,
        "precision": precision,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
    }
    cmd = [str(h.OUR_PYTHON), str(Path(__file__).with_name("_run_ours.py")), "embed"]
    measured = h.run_measured(
        [*cmd, str(images), str(out), json.dumps(spec)], env={"HF_HOME": str(hf_home)}
    )
    report = h.last_json(measured.stdout)
    resolved = f"{report['device']} {precision}->{report['precision']}"
    config = f"{resolved} batch={args.batch_size} threads={args.workers}"
    return Result(
        "clip-assets",
        config,
        int(report["ok"]),
        measured.wall_s,
        measured.cpu_s,
        float(report["stage_s"]),
        measured.peak_pss_mb,
        measured.peak_rss_mb,
    )


def run_clip_retrieval(
    files: Path, out: Path, args: argparse.Namespace, weights: Path, workers: int
) -> Result:
    """``clip-retrieval inference`` from the peers venv on the files folder."""
    cmd = [
        str(h.PEERS_PYTHON.with_name("clip-retrieval")),
        "inference",
        f"--input_dataset={files}",
        f"--output_folder={out}",
        "--input_format=files",
        f"--batch_size={args.batch_size}",
        f"--num_prepro_workers={workers}",
        "--enable_text=False",
        "--enable_metadata=False",
        f"--clip_model=open_clip:ViT-B-32/{weights}",
        f"--use_jit={args.jit}",
    ]
    measured = h.run_measured(cmd, env={"HF_HOME": str(out / "hf-empty")})
    stats = [json.loads(p.read_text()) for p in (out / "stats").glob("*.json")]
    n = sum(int(s["sample_count"]) for s in stats)
    loop = sum(float(s["total_duration"]) for s in stats)
    return Result(
        "clip-retrieval",
        f"cpu fp32 batch={args.batch_size} prepro_workers={workers} jit={args.jit}",
        n,
        measured.wall_s,
        measured.cpu_s,
        loop,
        measured.peak_pss_mb,
        measured.peak_rss_mb,
    )


def peer_embeddings(output_folder: Path) -> np.ndarray:
    """clip-retrieval's image embeddings, in the sorted file order (= our row order)."""
    parts = sorted((output_folder / "img_emb").glob("*.npy"))
    return np.concatenate([np.load(p) for p in parts])


def compare(
    ours_runs: list[Result], precisions: list[str], peers: list[Result], work: Path, workers: int
) -> None:
    """Prints each of our runs against clip-retrieval's best, with the embeddings' cosine."""
    peer = max(peers, key=lambda r: r.n / r.wall_s)
    theirs = peer_embeddings(work / f"clip-retrieval-{workers}")
    print(f"\nagainst clip-retrieval's best ({peer.config}):")
    for precision, ours in zip(precisions, ours_runs, strict=True):
        mine = np.stack(
            pq.read_table(work / f"ours-{precision}.parquet")["embedding"].to_numpy(False)
        )
        cosine = np.sum(mine * theirs, axis=1)
        print(
            f"  clip-assets {precision}: "
            f"{(ours.n / ours.wall_s) / (peer.n / peer.wall_s):.2f}x images/s whole command, "
            f"{(ours.n / ours.loop_s) / (peer.n / peer.loop_s):.2f}x embedding loop, "
            f"{(ours.n / ours.cpu_s) / (peer.n / peer.cpu_s):.2f}x images per CPU-second; "
            f"cosine to clip-retrieval's embeddings min {cosine.min():.5f}, "
            f"mean {cosine.mean():.5f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="images to embed")
    parser.add_argument("--pool", type=int, default=500, help="distinct source images")
    parser.add_argument(
        "--source",
        choices=("stage", "resize"),
        default="stage",
        help="stored images from our images stage, or resized here with Pillow",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="both tools")
    parser.add_argument("--workers", type=int, default=2, help="preprocessing workers, both")
    parser.add_argument("--device", default="cpu", help="ours: cpu | cuda | auto")
    parser.add_argument(
        "--precision",
        default="auto",
        help="ours, comma-separated runs: auto | fp32 | bf16 | fp16 (the first is the headline)",
    )
    parser.add_argument(
        "--jit",
        choices=("False", "True"),
        default="False",
        help="clip-retrieval's use_jit (its default is False)",
    )
    parser.add_argument(
        "--peer-workers",
        help="clip-retrieval num_prepro_workers to try, comma-separated (default: --workers)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for this script, the server and both tools (negative needs root): "
        "keeps other work on a shared machine from skewing the comparison",
    )
    parser.add_argument("--skip-peer", action="store_true", help="our side only (e.g. on GPU)")
    parser.add_argument("--keep", type=Path, help="keep outputs in this existing folder")
    args = parser.parse_args()
    if args.nice:
        os.nice(args.nice)  # inherited by every child: server and both tools alike

    from clip_assets.offline.weights import install_pretrained_standin

    work = Path(tempfile.mkdtemp(prefix="bench-embed-", dir=args.keep))
    hf_home = work / "hf"
    weights = install_pretrained_standin(hf_home)
    images = stored_images(args.n, h.image_pool(args.pool), args.source)
    images_path = work / "images.parquet"
    pq.write_table(images, images_path)
    files = work / "files"
    files.mkdir()
    for i, blob in enumerate(images.column("image").to_pylist()):
        (files / f"{i:06d}.jpg").write_bytes(blob)
    sizes = [len(b) for b in images.column("image").to_pylist()]
    print(f"{args.n} stored images, {np.mean(sizes) / 1024:.1f} KB mean, weights {weights}")

    results = []
    precisions = args.precision.split(",")
    for precision in precisions:
        out = work / f"ours-{precision}.parquet"
        results.append(run_ours(images_path, out, args, hf_home, precision))
        print(h.table([results[-1].row()], HEADER).splitlines()[-1], flush=True)
    peer_workers = [int(w) for w in (args.peer_workers or str(args.workers)).split(",")]
    for workers in [] if args.skip_peer else peer_workers:
        out = work / f"clip-retrieval-{workers}"
        results.append(run_clip_retrieval(files, out, args, weights, workers))
        print(h.table([results[-1].row()], HEADER).splitlines()[-1], flush=True)

    print(f"\nViT-B-32 (random weights, real checkpoint name), N={args.n}")
    print(h.table([r.row() for r in results], HEADER))
    peers = results[len(precisions) :]
    if peers:
        compare(results[: len(precisions)], precisions, peers, work, peer_workers[0])
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
