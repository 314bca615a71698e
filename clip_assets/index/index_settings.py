"""Knobs of the index build (``faiss_index`` asset), one frozen object so a build is reproducible.

The memory/key knobs are autofaiss's own (same names, same meaning); the tuning and growth knobs
are ours, because autofaiss tunes for a latency budget instead of a recall target and has no
incremental mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class IndexSettings:
    """How to choose, build, tune and measure the index.

    Attributes:
        max_index_memory_usage: upper bound on the index size (autofaiss's knob); it decides
            between HNSW, IVF-Flat and compressed codes.
        current_memory_available: memory the build may use (autofaiss's knob): a build whose
            index, samples and batches would not fit in it is refused before it reads a vector.
        refine: where the budget rules out float32 vectors (autofaiss would pick PQ codes),
            build a two-stage index instead: IVF over fast-scan PQ codes re-ranked by SQ8 or
            fp16 codes, the candidate that fits the budget and reaches ``recall_target``
            fastest on a sample (see ``calibrate``). ``False`` builds autofaiss's key.
        calibration_vectors: size of the uniform random sample the two-stage candidates are
            measured on (each is built over it and the anchors' neighbourhoods, with its IVF
            lists scaled to that sample).
        calibration_anchors: queries (half image, half text) whose neighbourhoods join the
            calibration sample and whose recall the candidates are compared by.
        calibration_neighbourhood_lists: each anchor's exact nearest vectors over the whole
            data join the calibration sample, as many as this many of the full index's IVF
            lists hold (about 4,000 at 4M): around the anchors, the sample is as crowded as the
            data (see ``neighbourhoods``).
        split_lists_over: an IVF list whose share of the training sample is over this many
            times the mean is split by a k-means over its members (``coarse``), so a probe
            into a crowd of the data scans about a mean list; 0 keeps faiss's lists. Applies to
            keys whose first layer is an IVF over a flat quantizer.
        max_training_vectors: most vectors any index is trained on (64 per IVF list up to
            this; autofaiss asks 1.6M at DataComp small, hours of k-means on a few cores).
        index_key: a faiss ``index_factory`` key that overrides autofaiss's choice.
        metric_type: ``"ip"`` (cosine on our unit-norm embeddings) or ``"l2"``.
        nb_cores: faiss OpenMP threads for build and measurement; ``None`` keeps faiss's default.
        should_be_memory_mappable: restrict the choice to keys whose data can be mmapped.
        recall_target: recall@``recall_k`` the tuner must reach at the least latency.
        recall_margin: added to ``recall_target`` where the tuner and the key choice aim
            (:attr:`tuning_target`): they pick the cheapest setting that passes on a few hundred
            queries, which overstates its recall on others. At 300k CLIP-like vectors a setting
            tuned to exactly 0.95 gave text recall@10 0.968 on its 256 tuning captions and
            0.950 on 1,000 others.
        recall_k: the k of that target.
        query_count: image queries for tuning, and as many again, disjoint, for the reported
            recall; taken from the last ids and added only after measuring when there are
            enough new vectors (see ``build._query_ids``).
        latency_queries: single-vector searches timed for p50/p99.
        incremental_add_max_share: largest share of new vectors a trained IVF index takes
            without retraining; past it the index is rebuilt.
        min_vectors_for_ivf: below this, memory-mappable builds use ``Flat`` instead of an IVF
            whose centroids could not be trained meaningfully.
        hnsw_ef_construction: HNSW build effort (graph, or HNSW coarse quantizer); ``None``
            keeps faiss's 40 (autofaiss's choice). On 1M clustered 512-d vectors, 40 caps
            recall@10 near 0.945 at any efSearch; 128 reaches 0.96 at efSearch 48.
        batch_rows: rows read from parquet at a time (bounds the streaming memory).
        seed: sampling seed (training and query samples), so rebuilds are repeatable.
    """

    max_index_memory_usage: str = "16G"
    current_memory_available: str = "32G"
    refine: bool = True
    calibration_vectors: int = 50_000
    calibration_anchors: int = 96
    calibration_neighbourhood_lists: float = 2.0
    split_lists_over: float = 4.0
    max_training_vectors: int = 500_000
    index_key: str | None = None
    metric_type: Literal["ip", "l2"] = "ip"
    nb_cores: int | None = None
    should_be_memory_mappable: bool = False
    recall_target: float = 0.95
    recall_margin: float = 0.02
    recall_k: int = 10
    query_count: int = 500
    latency_queries: int = 300
    incremental_add_max_share: float = 0.2
    min_vectors_for_ivf: int = 1_000
    hnsw_ef_construction: int | None = 128
    batch_rows: int = 65_536
    seed: int = 0

    @property
    def tuning_target(self) -> float:
        """The recall@k the tuner and the key choice aim for: the target plus the margin."""
        return self.recall_target + self.recall_margin

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy, recorded in ``index_infos.json`` so a build says how it was made."""
        return asdict(self)
