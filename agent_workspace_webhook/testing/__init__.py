"""Developer tooling, as kopf keeps `kopf.testing` and controller-runtime `envtest`: never
imported by `serve`, removed from the container image.

`Environment` (env.py) is the one way to a dev cluster with the webhook installed; the rest is
what tests, the demo and the benchmarks do with it: objects shaped as the platform makes them
(objects.py, pure), runs as CodeRun + Job (runs.py), and plain-dict calls (kube.py).
"""

from agent_workspace_webhook.testing.controlplane import ControlPlane
from agent_workspace_webhook.testing.env import Environment
from agent_workspace_webhook.testing.kube import create, create_job, denial, pvcs, wait_bound
from agent_workspace_webhook.testing.local_webhook import LocalWebhook
from agent_workspace_webhook.testing.objects import (
    applied,
    claim,
    coderun,
    coderun_job,
    controller_pod,
    decode_patch,
    job_pod,
    review,
)
from agent_workspace_webhook.testing.processes import ControlPlaneError
from agent_workspace_webhook.testing.runs import Run, cancel, launch, start_run, submit, wait_gone, wait_running

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "Environment",
    "LocalWebhook",
    "Run",
    "applied",
    "cancel",
    "claim",
    "coderun",
    "coderun_job",
    "controller_pod",
    "create",
    "create_job",
    "decode_patch",
    "denial",
    "job_pod",
    "launch",
    "pvcs",
    "review",
    "start_run",
    "submit",
    "wait_bound",
    "wait_gone",
    "wait_running",
]
