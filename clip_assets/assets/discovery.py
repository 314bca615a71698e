"""Adding partitions for what a source holds: shared by the sensor and the CLI."""

from dataclasses import dataclass

from clip_assets import paths
from clip_assets.registry import DatasetSpec
from clip_assets.source.discover import discover_slices
from clip_assets.source.files import HubAccess
from clip_assets.source.slices import manifest_from_json, manifest_to_json
from resources.storage import StorageResource


@dataclass(frozen=True)
class PartitionPlan:
    """What to change in the instance: keys to add, delete, and (re)materialise."""

    add: list[str]
    delete: list[str]
    run: list[str]


def plan_partitions(
    spec: DatasetSpec, storage: StorageResource, existing: list[str], hub: HubAccess
) -> PartitionPlan:
    """Looks at the source, saves the updated manifest, and says what the instance lacks.

    The manifest is saved before any partition is added, so a run never starts for a key the
    manifest does not know. Keys the manifest knows but the instance lacks (an earlier tick
    that stopped half way) are added and run again, so a failed tick is repaired by the next.
    """
    manifest_path = paths.manifest(spec.name)
    known = (
        manifest_from_json(storage.read_bytes(manifest_path))
        if storage.exists(manifest_path)
        else {}
    )
    found = discover_slices(spec, known, hub)
    if found.added or found.changed or found.removed:
        storage.write_bytes(manifest_path, manifest_to_json(found.manifest))
    present = set(existing)
    add = sorted(key for key in found.manifest if key not in present)
    delete = sorted(key for key in found.removed if key in present)
    run = sorted(set(add) | set(found.changed))
    return PartitionPlan(add=add, delete=delete, run=run)


def contiguous_runs(order: list[str], wanted: list[str], max_len: int) -> list[tuple[str, str]]:
    """Groups ``wanted`` keys into (first, last) ranges of neighbours in partition ``order``,
    each at most ``max_len`` long: one run per range loads the model once for all of it."""
    wanted_set = set(wanted)
    ranges: list[tuple[str, str]] = []
    current: list[str] = []
    for key in order:
        if key in wanted_set and len(current) < max_len:
            current.append(key)
            continue
        if current:
            ranges.append((current[0], current[-1]))
        current = [key] if key in wanted_set else []
    if current:
        ranges.append((current[0], current[-1]))
    return ranges
