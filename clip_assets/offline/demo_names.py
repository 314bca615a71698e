"""The name the demo's trained CLIP goes by, importable before huggingface_hub is: the demo puts
it in the environment before anything reads ``HF_HOME`` (see ``demo_model`` for the model)."""

#: A Hub-style repo that exists only in the demo's own Hugging Face cache: nothing is ever
#: downloaded for it.
DEMO_REPO = "clip-assets-demo/shapes-clip"
DEMO_MODEL_NAME = f"hf-hub:{DEMO_REPO}"
