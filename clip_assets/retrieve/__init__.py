"""The retrieval stage: a query set in, a dataset of the index's matching images out.

Plain Python, no Dagster. ``retrieval_dataset.build_retrieval_dataset`` runs the whole flow
the CLI and the asset use; its steps: ``retrieval.retrieve_to_file`` (a ``QuerySet`` of prompts,
embeddings, image URLs, files or bytes, searched through any ``ClipSearcher``) writes the hits;
``retrieved_images.download_hits_to_file`` adds their images through the images stage;
``fondant_view.write_fondant`` writes the shape Fondant's retrieval components produce. Knobs
in ``retrieve_settings`` (``RetrievalSettings``). Modules, in data order: ``query_set`` ->
``query_embedding`` -> ``hit_selection`` -> ``retrieval`` (with ``retrieval_summary``) ->
``retrieved_images`` / ``fondant_view`` -> ``retrieval_dataset``.
"""
