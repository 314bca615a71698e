"""The images stage: download, check and re-encode the images of one metadata shard.

Plain Python, no Dagster. Entry points live in ``stage`` (``download_shard_to_file`` and
``retry_failed_to_file`` for partitions, ``download_shard`` and ``retry_failed`` returning
tables) and ``summary`` (``summarize``); knobs in ``settings`` (``DownloadSettings``); the
``reason`` vocabulary in ``reasons``. Modules, in data order: ``safety`` -> ``robots`` ->
``fetch`` -> ``resize`` -> ``pipeline`` -> ``workers`` -> ``writer`` -> ``stage`` ->
``summary``.
"""
