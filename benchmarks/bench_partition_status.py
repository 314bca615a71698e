"""The UI's partition status query on an existing rehearsal's instance, webserver only.

Starts ``dagster-webserver`` (no daemon, so nothing runs or resumes) on a copy of a rehearsal's
``DAGSTER_HOME`` with its registry and storage root, and times the query the asset page sends
for its partitions (keys, materialized, failed: ``_dagster_dev.PARTITION_HEALTH``) for each
partitioned stage, ``--repeats`` times. Prints one JSON line.

    python benchmarks/bench_partition_status.py /tmp/clip-assets-rehearsal/partitions-2560

A benchmark, not a test: nothing here runs in CI. It serves and asks only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _dagster_dev import PARTITION_HEALTH, free_port
from _rehearsal_report import PARTITIONED

REPO = Path(__file__).resolve().parent.parent


def _query(port: int, path: list[str]) -> dict:
    body = json.dumps({"query": PARTITION_HEALTH, "variables": {"assetKey": {"path": path}}})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())["data"]["assetNodeOrError"]


def _wait_for_asset(port: int, path: list[str], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if _query(port, path).get("__typename") == "AssetNode":
                return
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(3)
    raise TimeoutError(f"the webserver did not serve {path} in {timeout_s:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, help="a rehearsal's folder (bench_rehearsal --work)")
    parser.add_argument("--dataset", default="rehearsal")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "dagster_home"
        shutil.copytree(args.work / "dagster_home", home)  # the rehearsal's own stays as it was
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "CLIP_ASSETS_DATASETS": str(args.work / "datasets.yaml"),
            "CLIP_ASSETS_ROOT": str(args.work / "data"),
        }
        webserver = Path(sys.executable).parent / "dagster-webserver"
        command = [str(webserver), "-w", "workspace.yaml", "-p", str(port), "-h", "127.0.0.1"]
        # Default signal handlers and a session of its own, so the whole tree stops by PID.
        web = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for_asset(port, [args.dataset, PARTITIONED[-1]])
            report: dict[str, object] = {"bench": "partition_status", "work": str(args.work)}
            for stage in PARTITIONED:
                seconds = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    node = _query(port, [args.dataset, stage])
                    seconds.append(round(time.perf_counter() - started, 3))
                statuses = node["assetPartitionStatuses"]
                report[stage] = {
                    "seconds": seconds,
                    "keys": sum(len(d["partitionKeys"]) for d in node["partitionKeysByDimension"]),
                    "materialized": len(statuses["materializedPartitions"]),
                    "failed": len(statuses["failedPartitions"]),
                }
            report["load_average"] = os.getloadavg()
        finally:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(timeout=60)
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
