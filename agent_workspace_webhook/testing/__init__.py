"""Developer tooling, as kopf keeps `kopf.testing` and controller-runtime `envtest`: never
imported by `serve`, removed from the container image.

`Environment` (env.py) is the one way to a dev cluster with the webhook installed; the rest is
what tests, the demo and the benchmarks do with it: objects shaped as the platform makes them
(objects.py, pure), runs as the platform makes them: a CodeRun, and the twin of the platform's
controller (runs.py, twin/), and plain-dict calls (kube.py).
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
from agent_workspace_webhook.testing.runs import Run, cancel, fail, finish, start_run, submit, wait_running

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
    "fail",
    "finish",
    "job_pod",
    "pvcs",
    "review",
    "start_run",
    "submit",
    "wait_bound",
    "wait_running",
]
