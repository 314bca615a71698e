"""The Dagster glue of one dataset's graph: how its assets are keyed, partitioned, assembled,
automated and driven. The stage packages know nothing of it; the assets call into both.

``dataset_graph`` (keys and asset arguments) -> ``partitions`` (partitions, backfill policy,
range tags) -> ``factory`` (``dataset_definitions``: one dataset's ``Definitions``) ->
``automation`` (whole-dataset rebuilds) -> ``driver`` (partition plans and end-to-end runs, for
the sensor, the CLI and the demo). See docs/architecture.md.
"""
