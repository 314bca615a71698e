"""The pipeline commands end in a sentence a person can act on and exit status 1, never a
traceback: an unknown dataset, an empty source, a source whose every URL fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clip_assets.offline.datacomp import SampleRow, write_datacomp_shard

CLI = Path(sys.executable).parent / "clip-assets"


def _run(tmp_path: Path, registry: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "datasets.yaml").write_text(registry)
    environment = {
        **{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
        "CLIP_ASSETS_DATASETS": str(tmp_path / "datasets.yaml"),
        "CLIP_ASSETS_ROOT": str(tmp_path / "data"),
        **env,
    }
    return subprocess.run(
        [str(CLI), *args], env=environment, capture_output=True, text=True, timeout=600
    )


def _heavy_imports_after(argv: list[str], env: dict[str, str]) -> tuple[int, str, set[str]]:
    """Runs the CLI on ``argv`` in a fresh interpreter; returns its status, its stderr and
    which heavy libraries (model, index, orchestration) it had imported by the end."""
    code = (
        "import sys; from clip_assets.cli import main; rc = main(sys.argv[1:]); "
        "heavy = ('torch', 'open_clip', 'faiss', 'dagster'); "
        "print(','.join(m for m in heavy if m in sys.modules)); sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=120
    )
    return result.returncode, result.stderr, set(filter(None, result.stdout.strip().split(",")))


def test_an_unknown_dataset_is_named_before_anything_loads(tmp_path: Path) -> None:
    (tmp_path / "datasets.yaml").write_text("datasets: []\n")
    env = {**os.environ, "CLIP_ASSETS_DATASETS": str(tmp_path / "datasets.yaml")}
    status, stderr, heavy = _heavy_imports_after(["run", "--dataset", "nope"], env)
    assert status == 1
    assert "unknown dataset 'nope'" in stderr and "datacomp_small" in stderr
    assert "Traceback" not in stderr
    assert heavy == set()


def test_an_unreadable_query_image_is_named_before_any_model_loads(tmp_path: Path) -> None:
    bad = tmp_path / "holiday.jpg"
    bad.write_text("<html>not a picture</html>")
    argv = ["search", "--index-dir", str(tmp_path / "no-index"), "--image", str(bad)]
    status, stderr, heavy = _heavy_imports_after(argv, dict(os.environ))
    assert status == 1
    assert "holiday.jpg" in stderr and "Traceback" not in stderr
    assert not heavy & {"torch", "open_clip", "faiss"}


def test_an_empty_source_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    registry = f"datasets:\n  - name: empty\n    source: {tmp_path / 'empty'}\n"
    result = _run(tmp_path, registry, "run", "--dataset", "empty")
    assert result.returncode == 1
    assert "holds no rows" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_every_url_failing_says_what_happened_and_what_to_do(
    tmp_path: Path, tiny_model_name: str
) -> None:
    # Port 9 (discard) on loopback: nothing listens, every fetch is refused at once.
    rows = [SampleRow(url=f"http://127.0.0.1:9/{i}.jpg", text=f"t{i}") for i in range(6)]
    write_datacomp_shard(tmp_path / "source", rows)
    registry = (
        f"datasets:\n  - name: down\n    source: {tmp_path / 'source'}\n"
        "    rows_per_partition: 3\n    allowed_hosts: [127.0.0.1]\n"
    )
    result = _run(
        tmp_path,
        registry,
        "run",
        "--dataset",
        "down",
        CLIP_ASSETS_MODEL=tiny_model_name,
        CLIP_ASSETS_PRETRAINED="none",
    )
    assert result.returncode == 1
    assert "no image was downloaded" in result.stdout
    assert "retry_failed_only" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
