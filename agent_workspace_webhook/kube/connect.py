"""How the webhook reaches the Kubernetes API: a client configured from WEBHOOK_KUBECONFIG, the
Pod's ServiceAccount, or ~/.kube/config, with our pool size and no retries of urllib3's."""

from __future__ import annotations

from typing import Any

from agent_workspace_webhook.kube.store import ClusterError
from agent_workspace_webhook.rules.names import one_line
from agent_workspace_webhook.settings import Settings


def api_client(settings: Settings) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        if settings.kubeconfig is not None:
            config.load_kube_config(config_file=str(settings.kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as exc:
        raise ClusterError(
            f"no Kubernetes API to talk to ({one_line(exc)}): run in a cluster or set WEBHOOK_KUBECONFIG to a "
            "kubeconfig (serve --store memory and the offline review need none)"
        ) from None
    configuration.connection_pool_maxsize = settings.kube_pool_size
    configuration.retries = False  # the deadline is ours to spend, not urllib3's
    return client.ApiClient(configuration)
