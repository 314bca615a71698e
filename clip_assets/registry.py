"""The datasets clip-assets knows: built-in ones plus those listed in a registry file.

Each :class:`DatasetSpec` becomes one asset graph (keys prefixed with its name). The registry
file is YAML, found through ``CLIP_ASSETS_DATASETS`` (default ``datasets.yaml`` in the working
directory when present)::

    datasets:
      - name: my_laion_subset
        source: /data/laion/parquet         # a local folder, gs://bucket/prefix or
                                            # hf://datasets/<owner>/<repo>
        url_column: URL
        caption_column: TEXT
        uid_column: null                     # null: uid = md5(caption + url), as DataComp
        sha256_column: null
        rows_per_partition: 50000

Adding a dataset to the file and reloading the code location adds its graph.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

REGISTRY_ENV = "CLIP_ASSETS_DATASETS"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DatasetSpec:
    """Where one dataset's parquet files are and how to read them."""

    name: str
    source: str
    revision: str | None = None
    url_column: str = "url"
    caption_column: str | None = "text"
    uid_column: str | None = "uid"
    sha256_column: str | None = "sha256"
    rows_per_partition: int = 50_000
    file_glob: str = "**/*.parquet"
    # Hosts the downloader may reach although they resolve to private addresses (a dataset
    # served from a LAN mirror, or the offline demo on 127.0.0.1).
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"dataset name {self.name!r} must start with a letter and use only letters, "
                "digits and '_' (it prefixes asset keys)"
            )
        if self.rows_per_partition < 1:
            raise ValueError(f"{self.name}: rows_per_partition must be >= 1")

    @property
    def hub_repo(self) -> str | None:
        """The Hub dataset repo id when the source is ``hf://datasets/<owner>/<repo>``."""
        if self.source.startswith("hf://datasets/"):
            return self.source.removeprefix("hf://datasets/").strip("/")
        return None


DATACOMP_SMALL = DatasetSpec(
    name="datacomp_small",
    source="hf://datasets/mlfoundations/datacomp_small",
    description="DataComp small pool: 12.8M image-text pairs in about 25 parquet files.",
)

BUILTIN: tuple[DatasetSpec, ...] = (DATACOMP_SMALL,)


def _spec_from_mapping(entry: dict) -> DatasetSpec:
    known = {f.name for f in fields(DatasetSpec)}
    unknown = set(entry) - known
    if unknown:
        raise ValueError(f"unknown dataset settings {sorted(unknown)} in {entry.get('name')!r}")
    values = dict(entry)
    if "allowed_hosts" in values:
        values["allowed_hosts"] = tuple(values["allowed_hosts"] or ())
    return DatasetSpec(**values)


def load_registry(path: Path | None = None) -> list[DatasetSpec]:
    """Built-in datasets followed by those of the registry file; a later name replaces one."""
    if path is None:
        configured = os.environ.get(REGISTRY_ENV)
        path = Path(configured) if configured else Path("datasets.yaml")
        if not configured and not path.exists():
            return list(BUILTIN)
    if not path.exists():
        raise FileNotFoundError(f"dataset registry {path} ({REGISTRY_ENV}) does not exist")
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("datasets") or []
    by_name = {spec.name: spec for spec in BUILTIN}
    for entry in entries:
        spec = _spec_from_mapping(entry)
        by_name[spec.name] = spec
    return list(by_name.values())


def find_dataset(name: str, path: Path | None = None) -> DatasetSpec:
    """The registered dataset called ``name``; a clear error listing the known ones."""
    specs = {spec.name: spec for spec in load_registry(path)}
    if name not in specs:
        raise KeyError(f"unknown dataset {name!r}; registered: {', '.join(sorted(specs))}")
    return specs[name]
