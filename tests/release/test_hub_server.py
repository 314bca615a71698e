"""The loopback Hub answers the real huggingface_hub client the way the Hub does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from release_samples import TOKEN
from stand_ins.hub_server import HubServer

REPO = "org/plain"


def test_upload_folder_create_commit_and_tree(hub: HubServer, tmp_path: Path) -> None:
    api = HfApi(endpoint=hub.url, token=TOKEN)
    url = api.create_repo(REPO, repo_type="dataset", private=False)
    assert api.create_repo(REPO, repo_type="dataset", exist_ok=True) == url
    folder = tmp_path / "folder"
    (folder / "sub" / "deep").mkdir(parents=True)
    files = {
        "README.md": b"---\nlicense: mit\n---\nhello\n",
        "sub/a.parquet": b"PAR1" + os.urandom(100),  # LFS by pattern
        "sub/deep/b.bin": os.urandom(5000),  # LFS: binary
        "sub/c.txt": b"text\n",  # regular
    }
    for path, data in files.items():
        (folder / path).write_bytes(data)

    first = api.upload_folder(repo_id=REPO, repo_type="dataset", folder_path=folder)
    stored = {p: f.read_bytes() for p, f in hub.files(REPO).items() if p != ".gitattributes"}
    assert stored == files
    assert sorted(api.list_repo_files(REPO, repo_type="dataset")) == sorted(
        [*files, ".gitattributes"]
    )
    top = {e.path for e in api.list_repo_tree(REPO, repo_type="dataset")}
    assert top == {".gitattributes", "README.md", "sub"}
    assert {e.path for e in api.list_repo_tree(REPO, "sub", repo_type="dataset")} == {
        "sub/a.parquet",
        "sub/c.txt",
        "sub/deep",
    }

    second = api.create_commit(
        REPO,
        [CommitOperationDelete("sub/deep/"), CommitOperationAdd("new.txt", b"new\n")],
        commit_message="second",
        repo_type="dataset",
        parent_commit=first.oid,
    )
    assert set(hub.files(REPO)) == {
        ".gitattributes",
        "README.md",
        "sub/a.parquet",
        "sub/c.txt",
        "new.txt",
    }
    assert hub.commits(REPO)[-2:] == [first.oid, second.oid]
    assert api.repo_info(REPO, repo_type="dataset").sha == second.oid

    with pytest.raises(HfHubHTTPError, match="412"):  # the branch moved since `first`
        api.create_commit(
            REPO,
            [CommitOperationAdd("late.txt", b"late\n")],
            commit_message="stale",
            repo_type="dataset",
            parent_commit=first.oid,
        )


def test_unknown_repo_and_bad_yaml_are_refused(hub: HubServer) -> None:
    api = HfApi(endpoint=hub.url, token=TOKEN)
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_files("org/missing", repo_type="dataset")
    api.create_repo(REPO, repo_type="dataset")
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_file(
            path_or_fileobj=b"---\nlicense: [unclosed\n---\n",
            path_in_repo="README.md",
            repo_id=REPO,
            repo_type="dataset",
        )
