"""Stand-ins only the tests use; those the demo and the benchmarks use live in
``clip_assets.offline``."""
