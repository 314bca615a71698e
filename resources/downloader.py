"""The images stage's settings as a Dagster resource, editable in the launchpad."""

from __future__ import annotations

import dataclasses

from dagster import ConfigurableResource
from pydantic import Field

from clip_assets.download.download_settings import DownloadSettings

_DEFAULT = DownloadSettings()


class DownloaderResource(ConfigurableResource):
    """Settings of the HTTP image downloader (clip_assets.download).

    Reads: nothing. Writes: nothing. Guarantees: :meth:`settings_for` returns a validated
    :class:`DownloadSettings`; a dataset's ``allowed_hosts`` are added to this resource's, so
    only the dataset that names a private host may reach it.
    """

    concurrency: int = Field(_DEFAULT.concurrency, description="Requests in flight per shard.")
    per_host_concurrency: int = Field(_DEFAULT.per_host_concurrency, description="Per host.")
    connections_per_client: int = Field(
        _DEFAULT.connections_per_client, description="Connections per HTTP client in a worker."
    )
    connect_timeout_s: float = _DEFAULT.connect_timeout_s
    read_timeout_s: float = _DEFAULT.read_timeout_s
    total_timeout_s: float = Field(_DEFAULT.total_timeout_s, description="Per attempt, whole.")
    max_redirects: int = _DEFAULT.max_redirects
    retries: int = Field(_DEFAULT.retries, description="Extra attempts on transient failures.")
    backoff_base_s: float = _DEFAULT.backoff_base_s
    backoff_max_s: float = _DEFAULT.backoff_max_s
    retry_after_max_s: float = Field(_DEFAULT.retry_after_max_s, description="Cap on Retry-After.")
    max_body_bytes: int = _DEFAULT.max_body_bytes
    max_pixels: int = Field(_DEFAULT.max_pixels, description="Decompression-bomb limit.")
    min_image_size: int = _DEFAULT.min_image_size
    max_aspect_ratio: float | None = _DEFAULT.max_aspect_ratio
    image_size: int = _DEFAULT.image_size
    resize_mode: str = Field(
        _DEFAULT.resize_mode, description="no, keep_ratio, keep_ratio_largest, center_crop, border"
    )
    resize_only_if_bigger: bool = _DEFAULT.resize_only_if_bigger
    encode_format: str = _DEFAULT.encode_format
    encode_quality: int = _DEFAULT.encode_quality
    user_agent_token: str = _DEFAULT.user_agent_token
    contact_url: str | None = _DEFAULT.contact_url
    allow_private_addresses: bool = _DEFAULT.allow_private_addresses
    allowed_hosts: list[str] = Field(default_factory=list)
    hash_policy: str = Field(_DEFAULT.hash_policy, description="flag, drop or ignore")
    respect_opt_out: bool = _DEFAULT.respect_opt_out
    blur_faces: bool = _DEFAULT.blur_faces
    workers: int | None = Field(_DEFAULT.workers, description="Decode processes; None = cores.")
    min_rows_per_worker: int = Field(
        _DEFAULT.min_rows_per_worker, description="Smaller shards use fewer worker processes."
    )

    def settings_for(self, dataset_allowed_hosts: tuple[str, ...] = ()) -> DownloadSettings:
        """The settings for one dataset's shards."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(DownloadSettings)}
        values["allowed_hosts"] = tuple(
            dict.fromkeys([*self.allowed_hosts, *dataset_allowed_hosts])
        )
        return DownloadSettings(**values)
