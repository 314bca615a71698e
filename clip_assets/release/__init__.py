"""The ``hf_release`` stage: stage the release folder (``stage``), render its dataset card
(``card``) and publish it to a Hugging Face dataset repo (``upload``). No Dagster here."""
