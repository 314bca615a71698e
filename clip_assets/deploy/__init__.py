"""Running the asset graph past one machine: executor choice, pod sizes, pod specs.

``executor_choice`` picks the executor from configuration (in-process, multiprocess, or a pod
per step on Kubernetes); ``step_sizes`` says what each step's pod asks for; ``helm_values`` and
``pod_specs`` build, through dagster-k8s, the pods the executor would launch for a deployment
made with ``deploy/helm/values.yaml``.
"""
