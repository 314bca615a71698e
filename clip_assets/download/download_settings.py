"""Every knob of the images stage in one typed, frozen, picklable object.

``DownloadSettings`` is read by every module of this package and by worker processes (it is
sent to them pickled); it holds no live objects. Defaults follow img2dataset where it has the
same knob (shortest side 256, keep ratio, JPEG quality 95) and are conservative elsewhere.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass

#: Images files record the settings that made them under this schema metadata key.
SETTINGS_METADATA_KEY = b"clip_assets.download_settings"
#: The settings that decide what an images row holds (its bytes, its status); the others
#: (concurrency, timeouts, workers...) only decide how fast and how patiently it was fetched.
OUTPUT_FIELDS = (
    "max_body_bytes",
    "max_pixels",
    "min_image_size",
    "max_aspect_ratio",
    "image_size",
    "resize_mode",
    "resize_only_if_bigger",
    "encode_format",
    "encode_quality",
    "hash_policy",
    "respect_opt_out",
    "blur_faces",
)
RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")
ENCODE_FORMATS = ("jpg", "png", "webp")
HASH_POLICIES = ("flag", "drop", "ignore")
RESOLVERS = ("dns", "system")


@dataclass(frozen=True)
class DownloadSettings:
    """How the images stage fetches, checks and re-encodes one shard.

    Limits: ``concurrency`` requests in flight over the whole shard, at most
    ``per_host_concurrency`` of them to one host (both split evenly across worker processes),
    spread over httpx clients of ``connections_per_client`` connections each.
    Time: ``connect_timeout_s`` to open a connection, ``read_timeout_s`` of silence while
    reading, ``total_timeout_s`` for one HTTP request (each redirect hop is one) from connect
    to last byte read: this is what stops drip-feeding servers.
    Retries: ``retries`` extra attempts for transient failures, sleeping a random time up to
    ``min(backoff_max_s, backoff_base_s * 2**n)``, or the server's ``Retry-After`` when that is
    longer; a ``Retry-After`` beyond ``retry_after_max_s`` is not waited for in this run (the
    row stays a transient failure for ``retry_failed``).
    ``hash_policy``: "flag" keeps the image and sets status ``hash_mismatch``; "drop" sets the
    same status without image bytes; "ignore" never compares. ``allowed_hosts`` lists hosts
    or IP literals that may be private/loopback anyway (tests use ``("127.0.0.1",)``);
    ``allow_private_addresses`` lifts the address check entirely. ``workers``: processes that
    each run an event loop and their own decoder (``None`` = one per CPU core, 0 or 1 = in
    this process, with decoding on two threads);
    shards smaller than ``min_rows_per_worker`` per worker use fewer processes or none.
    Names: ``resolver`` "dns" asks ``dns_servers`` (``"ip"`` or ``"ip:port"``, IPv6 as
    ``"[ip]:port"``; empty = the servers of /etc/resolv.conf) from each event loop, waiting at
    most ``dns_timeout_s`` per server and query, and caches answers for their TTL held between
    ``dns_min_ttl_s`` and ``dns_max_ttl_s`` (names that do not exist too); "system" asks the
    operating system (getaddrinfo on threads: /etc/hosts, nsswitch) and caches answers for
    ``dns_min_ttl_s``. Hosts: after ``host_failure_limit`` consecutive connect errors or
    timeouts a host's remaining rows fail at once as ``host_unreachable`` (0 = never).
    Consent: ``respect_robots_txt`` reads each host's robots.txt once per run; ``respect_opt_out``
    honours X-Robots-Tag and the TDMRep ``tdm-reservation`` header, and ``tdmrep_well_known``
    also reads each host's ``/.well-known/tdmrep.json``.
    """

    concurrency: int = 64
    per_host_concurrency: int = 16
    connections_per_client: int = 2  # small pools cost the least CPU per request (fetch.py)
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    total_timeout_s: float = 30.0
    max_redirects: int = 5
    retries: int = 2
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_after_max_s: float = 30.0
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 89_478_485  # Pillow's own bomb threshold
    min_image_size: int = 0
    max_aspect_ratio: float | None = None
    image_size: int = 256
    resize_mode: str = "keep_ratio"
    resize_only_if_bigger: bool = False
    encode_format: str = "jpg"
    encode_quality: int = 95
    user_agent_token: str = "clip-assets"
    contact_url: str | None = None
    allow_private_addresses: bool = False
    allowed_hosts: tuple[str, ...] = ()
    hash_policy: str = "flag"
    respect_opt_out: bool = True
    blur_faces: bool = False
    workers: int | None = None
    min_rows_per_worker: int = 256
    resolver: str = "dns"
    dns_servers: tuple[str, ...] = ()
    dns_timeout_s: float = 2.0
    dns_min_ttl_s: float = 60.0
    dns_max_ttl_s: float = 3600.0
    host_failure_limit: int = 3
    respect_robots_txt: bool = True
    tdmrep_well_known: bool = False

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, not {self.resize_mode!r}")
        if self.encode_format not in ENCODE_FORMATS:
            raise ValueError(f"encode_format must be one of {ENCODE_FORMATS}")
        if self.hash_policy not in HASH_POLICIES:
            raise ValueError(f"hash_policy must be one of {HASH_POLICIES}")
        if self.concurrency < 1 or self.per_host_concurrency < 1:
            raise ValueError("concurrency and per_host_concurrency must be at least 1")
        if self.retries < 0 or self.max_redirects < 0:
            raise ValueError("retries and max_redirects must not be negative")
        if self.resolver not in RESOLVERS:
            raise ValueError(f"resolver must be one of {RESOLVERS}, not {self.resolver!r}")
        for server in self.dns_servers:
            dns_server_address(server)
        if not 0 <= self.dns_min_ttl_s <= self.dns_max_ttl_s or self.dns_timeout_s <= 0:
            raise ValueError("need 0 <= dns_min_ttl_s <= dns_max_ttl_s and dns_timeout_s > 0")
        if self.host_failure_limit < 0:
            raise ValueError("host_failure_limit must not be negative (0 turns it off)")

    @property
    def user_agent(self) -> str:
        """``Mozilla/5.0 (compatible; <token>/<version>; +<contact>)``: the token lets sites
        scope X-Robots-Tag directives to us, the contact lets them reach a human."""
        from clip_assets import __version__

        contact = f"; +{self.contact_url}" if self.contact_url else ""
        return f"Mozilla/5.0 (compatible; {self.user_agent_token}/{__version__}{contact})"

    def output_settings(self) -> dict:
        """The values of ``OUTPUT_FIELDS``: equal for two settings that make the same rows."""
        return {name: getattr(self, name) for name in OUTPUT_FIELDS}

    def file_metadata(self) -> dict[bytes, bytes]:
        """Parquet schema metadata recording these settings in the images file they made."""
        return {SETTINGS_METADATA_KEY: json.dumps(asdict(self), sort_keys=True).encode()}


def recorded_settings(schema_metadata: dict[bytes, bytes] | None) -> dict | None:
    """The settings an images file records (see ``file_metadata``); None for older files."""
    raw = (schema_metadata or {}).get(SETTINGS_METADATA_KEY)
    return json.loads(raw) if raw else None


def dns_server_address(server: str) -> tuple[str, int]:
    """``(ip, port)`` of a ``dns_servers`` entry: ``"ip"``, ``"ip:port"`` or ``"[ipv6]:port"``;
    ``ValueError`` for anything else (a name would need a resolver to find the resolver)."""
    text, port = server.strip(), 53
    if text.startswith("["):
        text, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":"))
    elif text.count(":") == 1:
        text, _, tail = text.partition(":")
        port = int(tail)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"dns_servers entries are IP addresses, not {server!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad port in dns_servers entry {server!r}")
    return text, port
