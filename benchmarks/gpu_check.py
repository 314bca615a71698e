"""The embeddings stage on a GPU, measured: stored JPEG bytes to vectors, path by path.

Generates images as the images asset stores them (web-like photos through the images stage's
own resize: 256 px shortest side, JPEG q95, ~45 KB) in an images parquet, and embeds that file
through ``embed_images`` / ``ClipEncoder`` with ViT-B-32 (seeded stand-in weights under the
production tag ``laion2b_s34b_b79k``; ``--model tiny`` for quick checks). For each path
(``pillow``: Pillow in worker threads, pinned copies; ``device``: nvjpeg and batched
resampling on the GPU), precision and batch size it prints images/s from reading the parquet
file to the embeddings table, GPU utilisation over the run, and the cosine of its embeddings
to the CPU fp32 Pillow path on a sample; then the time split per path (read, decode, resize,
transfer, model, each alone), and on a GPU the synchronising calls the main thread makes per
run. ``--compare DIR`` runs the same measurements against the package copy in DIR (see
gpu_wheels.sh) in a child process: before and after in one run. Writes the JSON result to
``--out``, default ``$OUT/gpu_check.json`` when ``OUT`` is set.

    python benchmarks/gpu_check.py --device cuda --compare .whl/baseline
    python benchmarks/gpu_check.py --device cpu --n 32 --batch-sizes 16 --model tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _gpu_measure as m
import numpy as np
import pyarrow.parquet as pq
import torch
from _harness import table

TARGET_IMAGES_PER_S = 10_000
REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    parser.add_argument("--n", type=int, help="rows to embed (default 8192 on a GPU, 32 on CPU)")
    parser.add_argument("--distinct", type=int, help="distinct stored JPEGs (default n / 4)")
    parser.add_argument("--batch-sizes", help="comma-separated (default 128,256,512; CPU 16)")
    parser.add_argument("--precisions", help="comma-separated (default fp16,bf16; CPU fp32,bf16)")
    parser.add_argument("--paths", default="pillow,device", help="pillow, device (or auto)")
    parser.add_argument("--pillow-workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--device-workers", type=int, default=3)
    parser.add_argument("--sample", type=int, default=64, help="rows compared with CPU fp32")
    parser.add_argument("--model", choices=("vit-b-32", "tiny"), default="vit-b-32")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per phase timing")
    parser.add_argument("--compare", type=Path, help="baseline package root (has clip_assets/)")
    parser.add_argument("--out", type=Path, help="JSON result file")
    parser.add_argument("--work", type=Path, help="keep images and weights in this folder")
    # Set by the parent for the --compare child: reuse its images, weights and reference.
    parser.add_argument("--package-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--images", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model-name", help=argparse.SUPPRESS)
    parser.add_argument("--pretrained", help=argparse.SUPPRESS)
    parser.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    on_cpu = args.device == "cpu"
    args.n = args.n or (32 if on_cpu else 8192)
    args.distinct = args.distinct or max(1, args.n // 4)
    args.batch_sizes = [
        int(b) for b in (args.batch_sizes or ("16" if on_cpu else "128,256,512")).split(",")
    ]
    args.precisions = (args.precisions or ("fp32,bf16" if on_cpu else "fp16,bf16")).split(",")
    args.paths = args.paths.split(",")
    args.sample = min(args.sample, args.n)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.package_root:
        sys.path.insert(0, str(args.package_root.resolve()))
    elif str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["HF_HOME"] = str(work / "hf")  # before huggingface_hub is imported
    os.environ["HF_HUB_OFFLINE"] = "1"

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"--device {args.device}: torch {torch.__version__} (CUDA build "
            f"{torch.version.cuda}) sees no GPU; use --device cpu to run without one"
        )
    import clip_assets

    result: dict = {}
    # Images first: their worker processes fork before anything initialises CUDA here.
    bench = Bench.prepare(args, work, device, result)
    result["environment"] = environment(device, clip_assets.__file__)
    say(f"environment: {json.dumps(result['environment'])}")
    result["runs"] = bench.runs()
    result["syncs"] = bench.syncs() if device.type == "cuda" else None
    result["phases"], result["model_ms_per_1k"] = bench.phases()
    if args.compare:
        result["baseline"] = run_baseline(bench, work)
    result["headline"] = headline(result)
    report(result)
    out = args.out or (
        Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else None
    )
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        say(f"wrote {out}")
    return result


@dataclass
class Bench:
    """What every measurement shares: the images file, the model, the CPU reference."""

    args: argparse.Namespace
    device: object
    images: Path
    model_name: str
    pretrained: str | None
    reference_path: Path
    loaded: dict  # precision -> LoadedModel on the device

    @classmethod
    def prepare(cls, args, work: Path, device, result: dict) -> Bench:

        from clip_assets.embed import ClipEncoder, ModelSpec
        from clip_assets.embed.model_loading import load_model

        images = args.images or work / "images.parquet"
        if not args.images:
            start = time.perf_counter()
            summary = m.write_stored_images(images, args.n, args.distinct, os.cpu_count() or 1)
            result["images"] = {**summary, "seconds": round(time.perf_counter() - start, 1)}
            say(f"stored images: {json.dumps(result['images'])}")
        model_name, pretrained = args.model_name, args.pretrained
        if model_name is None:
            model_name, pretrained = install_weights(args.model, work)
        reference_path = args.reference or work / "reference.npy"
        if not args.reference:
            start = time.perf_counter()
            spec = ModelSpec(model_name, pretrained, device="cpu", precision="fp32", num_workers=0)
            sample = read_blobs(images)[: args.sample]
            np.save(reference_path, ClipEncoder.load(spec).encode_images(sample))
            say(f"CPU fp32 reference for {args.sample} rows: {time.perf_counter() - start:.1f} s")
        loaded = {
            p: load_model(ModelSpec(model_name, pretrained, device=args.device, precision=p))
            for p in args.precisions
        }
        return cls(args, device, images, model_name, pretrained, reference_path, loaded)

    def encoder(self, path: str, precision: str, batch: int):
        """An encoder for one path; a baseline without ``preprocess`` runs its default."""
        from clip_assets.embed import ClipEncoder, ModelSpec

        fields = {f.name for f in dataclasses.fields(ModelSpec)}
        workers = self.args.device_workers if self.resolve(path) == "device" else None
        spec = ModelSpec(
            self.model_name,
            self.pretrained,
            device=self.args.device,
            precision=precision,
            batch_size=batch,
            num_workers=workers or self.args.pillow_workers,
            **({"preprocess": path} if "preprocess" in fields else {}),
        )
        return ClipEncoder(self.loaded[precision], spec), spec.num_workers

    def resolve(self, path: str) -> str:
        if path != "auto":
            return path
        return "device" if self.device.type == "cuda" else "pillow"

    def runs(self) -> list[dict]:
        """Every path x precision x batch size over the whole images file."""

        reference = np.load(self.reference_path)
        runs = []
        for path in self.args.paths:
            for precision in self.args.precisions:
                for batch in self.args.batch_sizes:
                    encoder, workers = self.encoder(path, precision, batch)
                    run = embed_run(encoder, batch, self.images, reference, self.device)
                    run.update(
                        path=self.resolve(path),
                        precision=precision,
                        batch_size=batch,
                        workers=workers,
                    )
                    check_implementation(run, self.device)
                    runs.append(run)
                    say(f"run: {json.dumps(run)}")
        return runs

    def syncs(self) -> dict:
        """Synchronising CUDA calls per thread over a 4-batch embed_images call, per path."""

        from clip_assets.embed import embed_images

        counts = {}
        for path in self.args.paths:
            batch = self.args.batch_sizes[0]
            encoder, _ = self.encoder(path, self.args.precisions[0], batch)
            table = pq.read_table(self.images).slice(0, 4 * batch)
            embed_images(table, encoder)  # warm-up: constants and streams made once
            with m.SyncCount().count() as counted:
                embed_images(table, encoder)
            counts[self.resolve(path)] = {"batches": 4, **counted.by_thread}
        say(f"synchronising calls over 4 batches, by thread: {json.dumps(counts)}")
        return counts

    def phases(self) -> tuple[list[dict], dict]:
        """Each phase alone on one headline-size batch, both paths; the model per precision."""

        from clip_assets.embed.preprocess import Preprocessing

        batch = 256 if 256 in self.args.batch_sizes else self.args.batch_sizes[0]
        blobs = read_blobs(self.images)[:batch]
        prep = Preprocessing.from_open_clip(next(iter(self.loaded.values())).preprocess_cfg)
        phases = []
        for path in ("pillow", "device"):
            timed, pixels = m.phase_times(
                blobs, self.images, prep, path, self.device, self.args.repeats
            )
            phases.append(timed)
            say(f"phases: {json.dumps(timed)}")
        model = m.model_times(pixels, self.loaded, prep, self.device, self.args.repeats)
        say(f"model (normalise + forward), ms per 1,000 images: {json.dumps(model)}")
        return phases, model


def read_blobs(images: Path) -> list[bytes]:

    return pq.read_table(images, columns=["image"]).column("image").to_pylist()


def environment(device, package_file: str) -> dict:
    import open_clip
    import PIL
    import torchvision

    info = {
        "package": str(Path(package_file).parent),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "open_clip": open_clip.__version__,
        "pillow": PIL.__version__,
        "cpu_count": os.cpu_count(),
        "device": str(device),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def install_weights(model: str, work: Path) -> tuple[str, str | None]:
    from clip_assets.offline.weights import install_pretrained_standin, install_tiny_model

    if model == "tiny":
        return install_tiny_model(work / "tiny-clip"), None
    install_pretrained_standin(work / "hf")
    return "ViT-B-32", "laion2b_s34b_b79k"


def embed_run(encoder, batch: int, images: Path, reference, device) -> dict:
    """One timed pass from the images file to the embeddings table (after a warm-up)."""

    from clip_assets.embed import embed_images

    embed_images(pq.read_table(images).slice(0, 2 * batch), encoder)
    with m.UtilisationSampler(device) as sampler:
        m.synchronize(device)
        start = time.perf_counter()
        table = embed_images(pq.read_table(images), encoder)
        m.synchronize(device)
        seconds = time.perf_counter() - start
    flat = table.column("embedding").combine_chunks().flatten().to_numpy()
    vectors = flat.reshape(table.num_rows, -1)[: len(reference)]
    cosine = (vectors * reference).sum(axis=1)
    return {
        "rows": table.num_rows,
        "seconds": round(seconds, 3),
        "images_per_s": round(table.num_rows / seconds, 1),
        "gpu_utilisation": sampler.summary(),
        "cosine_min": round(float(cosine.min()), 6),
        "cosine_mean": round(float(cosine.mean()), 6),
        "implementation": encoder.identity["preprocessing"]["implementation"],
    }


def check_implementation(run: dict, device) -> None:
    """Stop when a run measured another path than its label (a misconfigured machine)."""
    wanted = {"pillow": "Pillow", "device": "nvjpeg" if device.type == "cuda" else "torch"}
    if wanted[run["path"]] not in run["implementation"]:
        raise RuntimeError(
            f"the {run['path']} path ran as {run['implementation']!r}: expected "
            f"{wanted[run['path']]!r} on {device}"
        )


def run_baseline(bench: Bench, work: Path) -> dict:
    """This script in a child process against the baseline package: same images, weights."""
    args = bench.args
    out = work / "baseline.json"
    cmd = [sys.executable, __file__, "--package-root", str(args.compare), "--paths", "auto"]
    cmd += ["--device", args.device, "--batch-sizes", ",".join(map(str, args.batch_sizes))]
    cmd += ["--precisions", ",".join(args.precisions), "--sample", str(args.sample)]
    cmd += ["--repeats", str(args.repeats), "--pillow-workers", str(args.pillow_workers)]
    cmd += ["--device-workers", str(args.device_workers), "--images", str(bench.images)]
    cmd += ["--model-name", bench.model_name, "--reference", str(bench.reference_path)]
    cmd += ["--work", str(work), "--out", str(out)]
    cmd += ["--pretrained", bench.pretrained] if bench.pretrained else []
    say(f"baseline ({args.compare}): {' '.join(cmd)}")
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    subprocess.run(cmd, check=True, env=env)
    return json.loads(out.read_text())


def headline(result: dict) -> dict:
    best = max(result["runs"], key=lambda r: r["images_per_s"])
    line = {
        "best": {k: best[k] for k in ("path", "precision", "batch_size", "images_per_s")},
        "target_images_per_s": TARGET_IMAGES_PER_S,
        "target_met": best["images_per_s"] >= TARGET_IMAGES_PER_S,
        "all_cosines_at_least_0.999": all(r["cosine_min"] >= 0.999 for r in result["runs"]),
    }
    baseline = result.get("baseline")
    if baseline:
        old = {(r["path"], r["precision"], r["batch_size"]): r for r in baseline["runs"]}
        line["speedup_vs_baseline"] = {
            f"{r['path']} {r['precision']} b{r['batch_size']}": round(
                r["images_per_s"] / old[key]["images_per_s"], 2
            )
            for r in result["runs"]
            if (key := (r["path"], r["precision"], r["batch_size"])) in old
        }
    return line


def report(result: dict) -> None:

    def runs_table(runs, label):
        rows = [
            [
                label,
                r["path"],
                r["precision"],
                r["batch_size"],
                r["workers"],
                r["images_per_s"],
                r["gpu_utilisation"]["mean"],
                r["cosine_min"],
            ]
            for r in runs
        ]
        return rows

    rows = runs_table(result["runs"], "current")
    if result.get("baseline"):
        rows += runs_table(result["baseline"]["runs"], "baseline")
    header = ["code", "path", "precision", "batch", "workers", "img/s", "GPU util %", "cos min"]
    print("\n" + table(rows, header))
    phase_rows = []
    for label, res in (("current", result), ("baseline", result.get("baseline"))):
        if not res:
            continue
        model = " ".join(f"{k}={v}" for k, v in res["model_ms_per_1k"].items())
        for p in res["phases"]:
            phase_rows.append(
                [
                    label,
                    p["path"],
                    p["batch_size"],
                    p["read_ms_per_1k"],
                    p["decode_ms_per_1k"],
                    p["resize_ms_per_1k"],
                    p.get("resize_ops_per_batch", ""),
                    p["transfer_ms_per_1k"],
                    model,
                ]
            )
    print("\ntime split, each phase alone, ms per 1,000 images:")
    print(
        table(
            phase_rows,
            [
                "code",
                "path",
                "batch",
                "read",
                "decode",
                "resize",
                "resize ops",
                "transfer",
                "model (normalise + forward)",
            ],
        )
    )
    if result.get("syncs"):
        print(
            f"\nsynchronising calls over 4 batches: current {json.dumps(result['syncs'])}"
            + (
                f", baseline {json.dumps(result['baseline']['syncs'])}"
                if result.get("baseline")
                else ""
            )
        )
    print(f"\nheadline: {json.dumps(result['headline'])}", flush=True)


def say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    main()
