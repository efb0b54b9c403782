"""A twin of the platform's CodeRun controller (5dlabs/cto, Rust), for the tests and the demo:
what it computes for a CodeRun (claims.py, naming.py, labels.py, manifests.py, decisions.py:
pure) and what it does about it in a cluster (controller.py, reconcile.py, resources.py: the
official client). docs/design.md ("The platform controller's twin") says what it follows, file
by file, and what it leaves out."""

from agent_workspace_webhook.testing.twin.claims import (
    HEALER_PVC,
    IMPLEMENTATION_AGENTS,
    claim_for_spec,
    extract_agent_name,
    merged_spec,
    run_dir,
    sanitize_label_value,
)
from agent_workspace_webhook.testing.twin.config import TwinConfig
from agent_workspace_webhook.testing.twin.controller import (
    ControllerTwin,
    claim_for,
    job_name_for,
    release_coderuns,
    wait_for_job,
)
from agent_workspace_webhook.testing.twin.manifests import ConfigError, cleanup_job_manifest, job_manifest, pvc_manifest
from agent_workspace_webhook.testing.twin.naming import SpecError, cleanup_job_name, job_name
from agent_workspace_webhook.testing.twin.reconcile import FINALIZER

__all__ = [
    "FINALIZER",
    "HEALER_PVC",
    "IMPLEMENTATION_AGENTS",
    "ConfigError",
    "ControllerTwin",
    "SpecError",
    "TwinConfig",
    "claim_for",
    "claim_for_spec",
    "cleanup_job_manifest",
    "cleanup_job_name",
    "extract_agent_name",
    "job_manifest",
    "job_name",
    "job_name_for",
    "merged_spec",
    "pvc_manifest",
    "release_coderuns",
    "run_dir",
    "sanitize_label_value",
    "wait_for_job",
]
