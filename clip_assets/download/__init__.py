"""The images stage: download, check and re-encode the images of one metadata shard.

Plain Python, no Dagster. Entry points live in ``stage`` (``download_shard``, ``retry_failed``)
and ``summary`` (``summarize``); knobs in ``settings`` (``DownloadSettings``); the ``reason``
vocabulary in ``reasons``. Modules, in data order: ``safety`` -> ``robots`` -> ``fetch`` ->
``resize`` -> ``pipeline`` -> ``workers`` -> ``stage`` -> ``summary``.
"""
