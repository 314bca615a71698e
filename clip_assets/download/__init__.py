"""The images stage: download, check and re-encode the images of one metadata shard.

Plain Python, no Dagster. Entry points live in ``shard_download`` (``download_shard_to_file`` and
``retry_failed_to_file`` for partitions, ``download_shard`` and ``retry_failed`` returning
tables) and ``summary`` (``summarize``); knobs in ``download_settings`` (``DownloadSettings``); the
``reason`` vocabulary in ``reasons``. Modules, in data order: ``safety`` -> ``x_robots_tag`` ->
``fetch`` -> ``resize`` -> ``pipeline`` -> ``workers`` -> ``writer`` -> ``shard_download`` ->
``summary``.
"""
