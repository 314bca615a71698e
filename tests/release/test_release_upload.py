"""Publishing a staged release through the real huggingface_hub client to the loopback Hub."""

from __future__ import annotations

import hashlib
import logging
import traceback
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi
from release_samples import TOKEN
from stand_ins.hub_server import HubServer

from clip_assets.release.inputs import ReleaseInputs
from clip_assets.release.release_folder import write_release_folder
from clip_assets.release.upload import ReleaseUploadError, upload_release

REPO = "org/tiny-sample-clip"


def staged_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def hub_files(hub: HubServer) -> dict[str, bytes]:
    files = {path: stored.read_bytes() for path, stored in hub.files(REPO).items()}
    files.pop(".gitattributes")
    return files


def test_upload_stores_exactly_the_staged_files(
    inputs: ReleaseInputs, hub: HubServer, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    write_release_folder(inputs, release, rows_per_file=6)
    result = upload_release(release, REPO, TOKEN, endpoint=hub.url)

    assert hub_files(hub) == staged_files(release)
    assert result["repo_id"] == REPO
    assert result["commit_oid"] == hub.commits(REPO)[-1]
    assert result["url"] == f"{hub.url}/datasets/{REPO}"
    assert result["deleted"] == []
    assert hub.store.repos[REPO].private
    # faiss is binary, so the Hub routes it through LFS, as it would the real 2.5 GB index; its
    # bytes travel once although image.index has them too.
    tree = {
        f.path: f
        for f in HfApi(endpoint=hub.url, token=TOKEN).list_repo_tree(
            REPO, repo_type="dataset", recursive=True
        )
        if hasattr(f, "size")
    }
    faiss_sha = hashlib.sha256((release / "faiss").read_bytes()).hexdigest()
    assert tree["faiss"].lfs.sha256 == tree["image.index"].lfs.sha256 == faiss_sha
    assert tree["data/train-00000-of-00004.parquet"].lfs is not None
    assert tree["README.md"].lfs is None and tree["index_infos.json"].lfs is None
    assert hub.store.lfs_uploads[faiss_sha] == 1


def test_upload_through_the_size_threshold(inputs: ReleaseInputs, tmp_path: Path) -> None:
    """A text file over the Hub's 10 MB threshold goes through LFS too, byte-exact."""
    release = tmp_path / "release"
    write_release_folder(inputs, release)
    (release / "notes.txt").write_text("x" * (10 * 1024 * 1024 + 1))
    with HubServer(tmp_path / "hub2", token=TOKEN) as hub:
        upload_release(release, REPO, TOKEN, endpoint=hub.url)
        assert hub_files(hub) == staged_files(release)
        notes_sha = hashlib.sha256((release / "notes.txt").read_bytes()).hexdigest()
        assert hub.store.lfs_uploads[notes_sha] == 1


def test_rerun_commits_nothing_and_a_new_release_replaces_the_old(
    inputs: ReleaseInputs, hub: HubServer, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    write_release_folder(inputs, release, rows_per_file=6)
    first = upload_release(release, REPO, TOKEN, endpoint=hub.url)
    again = upload_release(release, REPO, TOKEN, endpoint=hub.url)
    assert again["commit_oid"] == first["commit_oid"]
    assert len(hub.commits(REPO)) == 2  # creation + one release

    write_release_folder(inputs, release, rows_per_file=100)  # one file per folder now
    third = upload_release(release, REPO, TOKEN, endpoint=hub.url)
    assert hub_files(hub) == staged_files(release)
    assert len(third["deleted"]) == 12  # 4 chunks x (data, id_mapping, metadata)


def test_token_never_in_errors_or_logs(
    inputs: ReleaseInputs,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    release = tmp_path / "release"
    write_release_folder(inputs, release)
    wrong = "hf_wrong_token_that_must_stay_secret_42"
    caplog.set_level(logging.DEBUG)
    server = HubServer(tmp_path / "hub2", token=TOKEN, leaky_errors=True)
    with server as hub, pytest.raises(ReleaseUploadError) as info:
        upload_release(release, REPO, wrong, endpoint=hub.url)

    text = "".join(traceback.format_exception(info.value))
    assert "401" in text and "***" in text  # the server did echo it; we scrubbed it
    assert wrong not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert wrong not in caplog.text
    out, err = capfd.readouterr()
    assert wrong not in out + err


def test_a_token_read_with_its_newline_uploads_and_never_shows(
    inputs: ReleaseInputs, tmp_path: Path
) -> None:
    """A secret file's trailing newline: stripped, so the upload works; in a wrong token (or
    inside one) the escaped form the HTTP layer quotes is scrubbed like the raw one."""
    release = tmp_path / "release"
    write_release_folder(inputs, release)
    with HubServer(tmp_path / "hub2", token=TOKEN, leaky_errors=True) as hub:
        upload_release(release, REPO, TOKEN + "\n", endpoint=hub.url)
        assert hub_files(hub) == staged_files(release)
        for wrong in ("hf_wrong_canary_token\n", "hf_inner_canary\nsecond_half"):
            with pytest.raises(ReleaseUploadError) as info:
                upload_release(release, REPO, wrong, endpoint=hub.url)
            text = "".join(traceback.format_exception(info.value))
            assert "***" in text
            for part in wrong.split():
                assert part not in text, text


def test_published_release_downloads_and_searches(
    inputs: ReleaseInputs, hub: HubServer, tmp_path: Path
) -> None:
    """What users do with the repo: snapshot_download it, open it, find a vector's own row."""
    from huggingface_hub import snapshot_download

    from clip_assets.search import ClipSearcher

    release = tmp_path / "release"
    write_release_folder(inputs, release, rows_per_file=6)
    upload_release(release, REPO, TOKEN, endpoint=hub.url)
    cache = tmp_path / "cache"
    folder = Path(
        snapshot_download(REPO, repo_type="dataset", cache_dir=cache, endpoint=hub.url, token=TOKEN)
    )
    downloaded = staged_files(folder)
    downloaded.pop(".gitattributes")
    assert downloaded == staged_files(release)
    # faiss and image.index share one blob in the cache: clip back's name costs no disk.
    assert (folder / "faiss").resolve() == (folder / "image.index").resolve()

    searcher = ClipSearcher.open(folder)
    data = pq.read_table(release / "data" / "train-00002-of-00004.parquet")
    hit = searcher.search(np.array([data.column("embedding")[1].as_py()], np.float32), k=1)[0][0]
    assert (hit.id, hit.url, hit.caption) == (13, data.column("url")[1].as_py(), "caption 13")
