"""The id mapping's memory follows a shard and a chunk, not the dataset.

Forty shards of 20,000 rows (160 MB of mapping) go through ``build_id_mapping`` in a fresh
interpreter, so Arrow's allocator peak (``max_memory``) is this build's alone; a build that held
the whole mapping, or every shard read, would peak above the mapping's size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import json
import pyarrow as pa
import pyarrow.compute as pc
from clip_assets.index.mapping import build_id_mapping
from clip_assets.index.shards import ShardEntry, uid_digest

SHARDS, ROWS = 40, 20_000

def uids(i):
    numbers = pa.array(range(i * ROWS, (i + 1) * ROWS)).cast(pa.string())
    return pc.binary_join_element_wise("uid-0000000000000000000000", numbers, "")

def embeddings(name):
    i = int(name)
    u = uids(i)
    url = pc.binary_join_element_wise("https://images.example.org/some/long/path/", u, ".jpg", "")
    return pa.table({"uid": u, "url": url})

def texts(name):
    u = uids(int(name))
    text = pc.binary_join_element_wise("a photo of a thing on a table, caption ", u, "")
    return pa.table({"uid": u, "text": text})

entries = [ShardEntry(str(i), ROWS, i * ROWS, uid_digest(uids(i))) for i in range(SHARDS)]
pool = pa.default_memory_pool()
before = pool.max_memory()
total = rows = 0
for table in build_id_mapping(entries, embeddings, texts, chunk_rows=50_000):
    total += table.nbytes
    rows += table.num_rows
print(json.dumps({"rows": rows, "mapping_bytes": total, "peak_bytes": pool.max_memory() - before}))
"""


def test_mapping_peak_memory_is_a_few_shards_not_the_dataset() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["rows"] == 800_000
    assert figures["peak_bytes"] < figures["mapping_bytes"] / 3
