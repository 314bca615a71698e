"""``dagster dev`` as a user starts it, and the GraphQL calls the UI makes against it.

:class:`DagsterDev` starts ``dagster dev -w workspace.yaml`` from the repository root with the
given environment (``DAGSTER_HOME`` holding the project's ``dagster.yaml``), in a process
session of its own so the whole tree stops by its pid. The helpers below are the UI's own
GraphQL operations: start a sensor, launch a partition backfill ("Materialize all
partitions"), read a backfill's status, and the partition health query the asset page asks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DAGSTER = Path(sys.executable).parent / "dagster"
LOCATION = "clip_assets.definitions:defs"
REPOSITORY = "__repository__"

PARTITION_HEALTH = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    __typename
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses {
          materializedPartitions materializingPartitions failedPartitions
        }
      }
    }
  }
}"""
SENSOR = """
query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename
  ... on Sensor { sensorState { status
    ticks(limit: 1000) { status timestamp endTimestamp } } } } }"""
START_SENSOR = """
mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename
  ... on Sensor { sensorState { status } } ... on PythonError { message } } }"""
LAUNCH_BACKFILL = """
mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename
  ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
  ... on UnauthorizedError { message } ... on PartitionSetNotFoundError { message } } }"""
BACKFILL = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status numPartitions timestamp endTimestamp } } }"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DagsterDev:
    """``with DagsterDev(env, log) as dev: dev.graphql(query, variables)``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DagsterDev:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(DAGSTER),
                    "dev",
                    "-w",
                    "workspace.yaml",
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                ],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            body = json.loads(response.read())
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_for_asset(self, path: list[str], timeout_s: float = 600) -> float:
        """Waits until the webserver serves the asset ``path``; returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            try:
                node = self.graphql(PARTITION_HEALTH, {"assetKey": {"path": path}})
                if node["assetNodeOrError"]["__typename"] == "AssetNode":
                    return time.monotonic() - started
            except (OSError, RuntimeError, urllib.error.URLError):
                pass
            time.sleep(2)
        raise TimeoutError(f"dagster dev did not serve {'/'.join(path)} in {timeout_s:.0f}s")

    def sensor(self, name: str) -> dict[str, Any]:
        selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
        data = self.graphql(SENSOR, {"s": {**selector, "sensorName": name}})
        return data["sensorOrError"]["sensorState"]

    def start_sensor(self, name: str) -> str:
        """Turns the sensor on as the UI's toggle does (a no-op when it already runs)."""
        if self.sensor(name)["status"] == "RUNNING":
            return "RUNNING"
        selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
        data = self.graphql(START_SENSOR, {"s": {**selector, "sensorName": name}})
        return data["startSensor"]["sensorState"]["status"]

    def launch_backfill(self, assets: list[list[str]]) -> str:
        """What "Materialize all partitions" sends for ``assets``; returns the backfill id."""
        params = {"assetSelection": [{"path": p} for p in assets], "allPartitions": True}
        answer = self.graphql(LAUNCH_BACKFILL, {"p": params})["launchPartitionBackfill"]
        if answer["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {answer}")
        return answer["backfillId"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        return self.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]

    def partition_health_s(self, path: list[str], repeats: int = 5) -> tuple[list[float], int]:
        """Seconds the webserver takes to answer the UI's partition health query, each of
        ``repeats`` times; and how many partition keys it returned."""
        timings, keys = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            node = self.graphql(PARTITION_HEALTH, {"assetKey": {"path": path}})
            timings.append(time.perf_counter() - started)
            dimensions = node["assetNodeOrError"]["partitionKeysByDimension"]
            keys = sum(len(d["partitionKeys"]) for d in dimensions)
        return timings, keys
