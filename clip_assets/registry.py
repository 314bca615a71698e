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
        allowed_hosts: [10.0.0.5, mirror.lan]   # one host may be written without the list
        query_sets:                          # optional: one retrieval asset per query set
          controlnet: my_laion_subset/queries/controlnet.csv   # below the storage root
          products: /data/prompts/products.parquet             # or an absolute local path
        run_on_discovery: true               # false: discovery only adds the partitions and
                                             # a person launches them (a UI backfill)
        tolerated_failed_share: 0.05         # partitions failed for good the index leaves out

Every entry is validated against :class:`DatasetSpec` (a pydantic dataclass: a number is not
text, text is not a number, a string is not a list, unknown settings are refused). A scalar
``allowed_hosts: 127.0.0.1`` is that one host, never its characters; each host must be one
name or address (no spaces, commas, ports or URLs). :func:`read_registry` returns the good
specs and a :class:`RegistryProblem` per bad entry (file, dataset, setting, what is wrong),
so one bad entry never takes the other datasets down; :func:`load_registry` is the strict
form. A later name replaces an earlier one (a file entry may replace a built-in dataset).
Adding a dataset to the file adds its graph: the registry sensor
(``clip_assets.graph.registry_sensor``) sees the file change and has the code location reloaded.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import ConfigDict, Strict, TypeAdapter, ValidationError, field_validator
from pydantic.dataclasses import dataclass as validated_dataclass

REGISTRY_ENV = "CLIP_ASSETS_DATASETS"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# One host name or address: no whitespace, separators, user info, paths or "host:port" (an
# IPv6 literal has two or more colons).
_NOT_A_HOST = re.compile(r"[\s,;/@?#]|^[^:]*:[^:]*$|^$")


@validated_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class DatasetSpec:
    """Where one dataset's parquet files are and how to read them."""

    name: str
    source: str
    revision: str | None = None
    url_column: str = "url"
    caption_column: str | None = "text"
    uid_column: str | None = "uid"
    sha256_column: str | None = "sha256"
    rows_per_partition: Annotated[int, Strict()] = 50_000
    file_glob: str = "**/*.parquet"
    # Hosts the downloader may reach although they resolve to private addresses (a dataset
    # served from a LAN mirror, or the offline demo on 127.0.0.1).
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    # Named query sets (name, location), each retrieved from the index by its own asset
    # (``<ds>/retrieval/<name>``); a location is below the storage root unless absolute.
    query_sets: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # Whether the discovery sensor requests runs for the partitions it adds (or only adds
    # them, leaving the launch to a person: "Materialize all partitions" in the UI).
    run_on_discovery: bool = True
    # Share of the partitions that may have failed for good and still be left out of the
    # index (the index, its metadata and the card name them); past it the build stops.
    tolerated_failed_share: float = 0.05

    @field_validator("name")
    @classmethod
    def _name_prefixes_asset_keys(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(
                f"dataset name {name!r} must start with a letter and use only letters, "
                "digits and '_' (it prefixes asset keys)"
            )
        return name

    @field_validator("rows_per_partition")
    @classmethod
    def _positive_rows(cls, rows: int) -> int:
        if rows < 1:
            raise ValueError(f"must be >= 1, got {rows}")
        return rows

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _hosts_as_tuple(cls, hosts: Any) -> Any:
        # One host written as a scalar is that host, not a sequence of characters.
        return (hosts,) if isinstance(hosts, str) else hosts

    @field_validator("query_sets", mode="before")
    @classmethod
    def _query_sets_as_pairs(cls, query_sets: Any) -> Any:
        # The registry file maps names to locations; the spec keeps sorted (name, location)
        # pairs so it stays hashable.
        if isinstance(query_sets, dict):
            return tuple(sorted((str(name), str(where)) for name, where in query_sets.items()))
        return query_sets

    @field_validator("query_sets")
    @classmethod
    def _query_set_names(cls, query_sets: tuple[tuple[str, str], ...]) -> tuple:
        for name, location in query_sets:
            if not _NAME.match(name) or not location:
                raise ValueError(
                    f"query set {name!r} needs a name of letters, digits and '_' (it is part "
                    "of an asset key) and a location"
                )
        return query_sets

    @field_validator("allowed_hosts")
    @classmethod
    def _each_one_host(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for host in hosts:
            if _NOT_A_HOST.search(host):
                raise ValueError(
                    f"{host!r} is not one host name or address "
                    "(no spaces, commas, ports or URLs; list several as [a, b])"
                )
        return hosts

    @field_validator("tolerated_failed_share")
    @classmethod
    def _a_share(cls, share: float) -> float:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"must be within 0..1, got {share}")
        return share

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
_SPEC = TypeAdapter(DatasetSpec)


@dataclass(frozen=True)
class RegistryProblem:
    """Why one registry entry (or the whole file) was not loaded."""

    file: str
    dataset: str | None  # the entry's name, "entry <n>" without one, None for the file
    key: str | None  # the setting at fault, e.g. "allowed_hosts[1]"
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.dataset is not None:
            where += f": dataset {self.dataset}"
        if self.key is not None:
            where += f", {self.key}"
        return f"{where}: {self.message}"


class RegistryError(ValueError):
    """The registry file has problems; the message lists each one."""

    def __init__(self, problems: list[RegistryProblem]) -> None:
        super().__init__("dataset registry problems:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Registry:
    """The datasets that loaded (built-ins first) and the problems of those that did not."""

    specs: list[DatasetSpec]
    problems: list[RegistryProblem]


def _key(location: tuple) -> str | None:
    """``("allowed_hosts", 1)`` -> ``"allowed_hosts[1]"``."""
    if not location:
        return None
    head, *rest = location
    return str(head) + "".join(f"[{part}]" for part in rest)


def _message(error: dict) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required setting is missing"
    if kind == "unexpected_keyword_argument":
        return "unknown setting (known: " + ", ".join(f.name for f in fields(DatasetSpec)) + ")"
    message = error["msg"].removeprefix("Value error, ")
    if kind != "value_error":
        message += f" (got {error['input']!r})"
    return message


def _named(problem: RegistryProblem) -> bool:
    return problem.dataset is not None and not problem.dataset.startswith("entry ")


def _validated(file: str, index: int, entry: Any) -> DatasetSpec | list[RegistryProblem]:
    """The entry's spec, or one problem per setting at fault."""
    label = f"entry {index + 1}"
    if not isinstance(entry, dict):
        return [RegistryProblem(file, label, None, "each dataset is a mapping of settings")]
    name = entry.get("name")
    dataset = name if isinstance(name, str) and name else label
    try:
        return _SPEC.validate_python(entry)
    except ValidationError as invalid:
        return [
            RegistryProblem(file, dataset, _key(error["loc"]), _message(error))
            for error in invalid.errors()
        ]


def _yaml_reason(error: yaml.YAMLError) -> str:
    """What PyYAML found and where, and the construct it was reading (where that began)."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return str(error)
    parts = []
    for text, mark in ((error.problem, error.problem_mark), (error.context, error.context_mark)):
        if text:
            parts.append(
                f"{text} at line {mark.line + 1}, column {mark.column + 1}" if mark else text
            )
    return "; ".join(parts) or str(error)


def _entries(path: Path) -> tuple[list[Any], list[RegistryProblem]]:
    """The file's dataset entries, or the problem that makes the file unreadable."""
    file = str(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        return [], [RegistryProblem(file, None, None, f"cannot read: {error.strerror}")]
    except yaml.YAMLError as error:
        return [], [RegistryProblem(file, None, None, f"not valid YAML: {_yaml_reason(error)}")]
    if document is None:
        return [], []
    if not isinstance(document, dict):
        message = "the file must be a mapping with a 'datasets' list"
        return [], [RegistryProblem(file, None, None, message)]
    entries = document.get("datasets") or []
    if not isinstance(entries, list):
        return [], [RegistryProblem(file, None, "datasets", "must be a list of datasets")]
    return entries, []


def registry_path(path: Path | None = None) -> Path | None:
    """The registry file to read: ``path``, else ``$CLIP_ASSETS_DATASETS``, else
    ``datasets.yaml`` when it exists; None when there is none to read."""
    if path is not None:
        return Path(path)
    configured = os.environ.get(REGISTRY_ENV)
    if configured:
        return Path(configured)
    default = Path("datasets.yaml")
    return default if default.exists() else None


def read_registry(path: Path | None = None) -> Registry:
    """Built-in datasets and the good entries of the registry file, plus a problem for each
    bad entry (or for the file, when it cannot be read or parsed)."""
    path = registry_path(path)
    by_name = {spec.name: spec for spec in BUILTIN}
    if path is None:
        return Registry(list(by_name.values()), [])
    if not path.exists():
        message = f"does not exist (set {REGISTRY_ENV} to an existing file)"
        return Registry(list(by_name.values()), [RegistryProblem(str(path), None, None, message)])
    entries, problems = _entries(path)
    for index, entry in enumerate(entries):
        spec = _validated(str(path), index, entry)
        if isinstance(spec, DatasetSpec):
            by_name[spec.name] = spec
        else:
            problems.extend(spec)
    return Registry(list(by_name.values()), problems)


def registry_fingerprint(path: Path | None = None) -> str:
    """A digest of the registry file's bytes ("none" without one): equal digests, same
    datasets. The registry sensor compares it with the one the code location loaded."""
    path = registry_path(path)
    if path is None or not path.exists():
        return "none"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_registry(path: Path | None = None) -> list[DatasetSpec]:
    """Like :func:`read_registry`, but any problem is a :class:`RegistryError`."""
    registry = read_registry(path)
    if registry.problems:
        raise RegistryError(registry.problems)
    return registry.specs


def find_dataset(name: str, path: Path | None = None) -> DatasetSpec:
    """The registered dataset called ``name`` (other entries' problems do not matter); a
    :class:`RegistryError` when ``name``'s entry is bad or the file unreadable, a KeyError
    listing the known names when there is no such dataset."""
    registry = read_registry(path)
    for spec in registry.specs:
        if spec.name == name:
            return spec
    # The entry asked for may be the one named so, or one whose name could not be read.
    relevant = [p for p in registry.problems if p.dataset == name or not _named(p)]
    if relevant:
        raise RegistryError(relevant)
    known = ", ".join(sorted(spec.name for spec in registry.specs))
    raise KeyError(f"unknown dataset {name!r}; registered: {known}")
