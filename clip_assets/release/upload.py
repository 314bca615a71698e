"""Publish a staged release folder as one commit to a Hugging Face dataset repo.

Reads every file under ``folder`` (see ``release_folder.py``). Writes one commit to
``repo_id`` (the repo is created first if missing, private by default; an existing repo keeps
its visibility) after which the repo's files are exactly the folder's: files of an earlier
release that this one lacks are deleted in the same commit, so ``data/*.parquet`` never mixes
two releases, and files that did not change are not sent again (an unchanged folder makes no
commit at all).

Paths that share bytes through a hard link (``image.index`` and ``faiss``) are sent once: the
first path's content is pre-uploaded, then the commit lists both and the Hub's LFS batch answers
that the second is already there. (With Xet storage, the default when ``hf_xet`` is installed,
chunk deduplication does the same.)

The token goes to ``HfApi`` only, stripped of surrounding whitespace: it is never logged or
returned, and any failure is raised as ``ReleaseUploadError`` whose text has every rendering of
the token scrubbed (``clip_assets.redaction``) and no chained exception that could carry it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

from clip_assets.redaction import normalise_secret, protect_logs, scrubbed_errors

log = logging.getLogger(__name__)

#: Files the Hub manages itself; a release never deletes them.
_KEEP = {".gitattributes"}


class ReleaseUploadError(RuntimeError):
    """The upload failed; the message says why, with any credentials removed."""


def upload_release(
    folder: Path,
    repo_id: str,
    token: str,
    *,
    endpoint: str | None = None,
    private: bool = True,
    revision: str | None = None,
    commit_message: str = "Publish CLIP embeddings release",
) -> dict:
    """Upload ``folder`` to the dataset repo ``repo_id``; ``endpoint`` defaults to the Hub.

    Returns ``{"repo_id", "commit_oid", "commit_url", "url", "files", "deleted"}``.
    """
    folder = Path(folder)
    secret = normalise_secret(token)
    protect_logs(token)
    if not secret:
        raise ReleaseUploadError("no Hugging Face token given")
    with scrubbed_errors(
        [token, secret], f"uploading {folder} to {repo_id} failed", ReleaseUploadError
    ):
        return _upload(folder, repo_id, secret, endpoint, private, revision, commit_message)


def _upload(
    folder: Path,
    repo_id: str,
    token: str,
    endpoint: str | None,
    private: bool,
    revision: str | None,
    commit_message: str,
) -> dict:
    api = HfApi(endpoint=endpoint, token=token)
    repo_url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"{folder} holds no files")
    additions, first_of_each_content = [], []
    seen_inodes: set[tuple[int, int]] = set()
    for path in files:
        op = CommitOperationAdd(
            path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=path
        )
        additions.append(op)
        inode = (path.stat().st_dev, path.stat().st_ino)
        if inode not in seen_inodes:
            seen_inodes.add(inode)
            first_of_each_content.append(op)

    staged = {op.path_in_repo for op in additions}
    remote = api.list_repo_files(repo_id, repo_type="dataset", revision=revision)
    deleted = sorted(p for p in remote if p not in staged and p not in _KEEP)
    deletions = [CommitOperationDelete(path_in_repo=p) for p in deleted]

    log.info("uploading %d files to %s (%d to delete)", len(additions), repo_id, len(deleted))
    api.preupload_lfs_files(
        repo_id,
        additions=first_of_each_content,
        repo_type="dataset",
        revision=revision,
        free_memory=False,
    )
    info = api.create_commit(
        repo_id,
        operations=[*additions, *deletions],
        commit_message=commit_message,
        repo_type="dataset",
        revision=revision,
    )
    log.info("committed %s to %s", info.oid, repo_id)
    return {
        "repo_id": repo_id,
        "commit_oid": info.oid,
        "commit_url": str(info.commit_url),
        "url": str(repo_url),
        "files": len(additions),
        "deleted": deleted,
    }
