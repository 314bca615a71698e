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
    resolver: str = Field(
        _DEFAULT.resolver,
        description="dns: asynchronous DNS client asking dns_servers; system: getaddrinfo "
        "(/etc/hosts, nsswitch) on threads.",
    )
    dns_servers: list[str] = Field(
        default_factory=list,
        description="DNS servers as ip or ip:port ([ipv6]:port); empty = /etc/resolv.conf's. "
        "A fast local caching resolver is the biggest lever on the success rate.",
    )
    dns_timeout_s: float = Field(_DEFAULT.dns_timeout_s, description="Per server and query.")
    dns_min_ttl_s: float = Field(_DEFAULT.dns_min_ttl_s, description="Answers kept at least.")
    dns_max_ttl_s: float = Field(_DEFAULT.dns_max_ttl_s, description="Answers kept at most.")
    host_failure_limit: int = Field(
        _DEFAULT.host_failure_limit,
        description="Connect errors/timeouts in a row after which a host's remaining rows fail "
        "at once as host_unreachable (retried by retry_failed_only); 0 = never.",
    )
    respect_robots_txt: bool = Field(
        _DEFAULT.respect_robots_txt,
        description="Read each host's robots.txt once per run; disallowed URLs are opted_out.",
    )
    tdmrep_well_known: bool = Field(
        _DEFAULT.tdmrep_well_known,
        description="Also read each host's /.well-known/tdmrep.json (TDMRep opt-outs).",
    )

    def settings_for(self, dataset_allowed_hosts: tuple[str, ...] = ()) -> DownloadSettings:
        """The settings for one dataset's shards."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(DownloadSettings)}
        values["allowed_hosts"] = tuple(
            dict.fromkeys([*self.allowed_hosts, *dataset_allowed_hosts])
        )
        values["dns_servers"] = tuple(self.dns_servers)
        return DownloadSettings(**values)
