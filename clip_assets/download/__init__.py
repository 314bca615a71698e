"""The images stage: download, check and re-encode the images of one metadata shard.

Plain Python, no Dagster. Entry points live in ``shard_download`` (``download_shard_to_file`` and
``retry_failed_to_file``, which write a partition's images file and return its
``NetworkStats``), ``summary`` (``summarize_file``) and ``health`` (``assess_summary``,
``HealthWatch`` for a running partition); knobs in ``download_settings`` (``DownloadSettings``);
the ``reason`` vocabulary in ``reasons``. Modules, in data order: ``name_lookup`` -> ``safety``
-> ``host_breaker``, ``site_rules`` (robots.txt, ``tdmrep``), ``x_robots_tag`` -> ``fetch`` ->
``resize`` -> ``pipeline`` -> ``workers`` -> ``writer`` -> ``shard_download`` -> ``summary``,
``health``.
"""
