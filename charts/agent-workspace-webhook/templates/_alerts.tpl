{{/*
The alert rules: what a platform team pages (critical) or tickets (warning) on. Each names what
to look at and links its section of docs/runbook.md. Metric names are the webhook's own,
kube-state-metrics' and the kubelet's; tests/e2e/test_monitoring.py checks every one exists and
runs promtool's unit tests of each alert, firing and not.
*/}}
{{- define "agent-workspace-webhook.alerts" -}}
{{- $r := .Values.monitoring.rules }}
{{- $job := $r.job | default (include "agent-workspace-webhook.fullname" .) }}
{{- $ns := .Release.Namespace }}
{{- $sel := printf "job=%q, namespace=%q" $job $ns }}
{{- $runbook := $r.runbookUrl }}
groups:
  - name: agent-workspace-webhook
    rules:
      - alert: AgentWorkspaceWebhookDown
        expr: absent(up{ {{- $sel -}} } == 1)
        for: 5m
        labels: {severity: critical}
        annotations:
          summary: No agent-workspace-webhook replica is scraped up.
          description: With failurePolicy Fail no agent run can start. Look at the Deployment {{ $ns }}/{{ include "agent-workspace-webhook.fullname" . }}, its Pods' events and logs, and the scrape target.
          runbook_url: {{ $runbook }}#agentworkspacewebhookdown
      - alert: AgentWorkspaceWebhookNotReady
        expr: kube_deployment_status_replicas_available{namespace={{ $ns | quote }}, deployment={{ include "agent-workspace-webhook.fullname" . | quote }}} < 1
        for: 5m
        labels: {severity: critical}
        annotations:
          summary: No agent-workspace-webhook replica is ready.
          description: /readyz fails until the API server answers and the watch caches are synced. Look at the Pods' readiness probe and the "cache synced" and "list/watch failed" log lines.
          runbook_url: {{ $runbook }}#agentworkspacewebhooknotready
      - alert: AgentWorkspaceWebhookErrors
        expr: sum(rate(agent_workspace_webhook_requests_total{ {{- $sel -}}, decision="error"}[5m])) / sum(rate(agent_workspace_webhook_requests_total{ {{- $sel -}} }[5m])) > {{ $r.errorRatio }}
        for: 10m
        labels: {severity: critical}
        annotations:
          summary: 'More than {{ mulf $r.errorRatio 100 }}% of admissions end in an error.'
          description: Runs are refused because the Kubernetes API failed, the deadline passed or the webhook is overloaded. The admission log lines with decision error say which; agent_workspace_webhook_kube_requests_total shows failing calls.
          runbook_url: {{ $runbook }}#agentworkspacewebhookerrors
      - alert: AgentWorkspaceWebhookSlow
        expr: histogram_quantile(0.99, sum by (le) (rate(agent_workspace_webhook_request_duration_seconds_bucket{ {{- $sel -}} }[5m]))) > {{ mulf .Values.webhook.timeoutSeconds 0.8 }}
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: Admission latency (p99) is near the webhook configuration's timeoutSeconds ({{ .Values.webhook.timeoutSeconds }}s).
          description: Past timeoutSeconds the API server gives up and the run fails. Look at the API server's latency (agent_workspace_webhook_kube_requests_total by code) and WEBHOOK_KUBE_DEADLINE_SECONDS.
          runbook_url: {{ $runbook }}#agentworkspacewebhookslow
      - alert: AgentWorkspaceWebhookKubeCallsFailing
        expr: sum by (verb, resource, code) (rate(agent_workspace_webhook_kube_requests_total{ {{- $sel -}}, code!~"2..|404|409"}[5m])) > 0
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: 'Kubernetes API calls fail: {{ "{{ $labels.verb }} {{ $labels.resource }} answered {{ $labels.code }}" }}.'
          description: 403 is RBAC or a ResourceQuota, 422 an invalid PVC spec (storage settings), timeout or unreachable the API server. The admission log lines name the object and the cause.
          runbook_url: {{ $runbook }}#agentworkspacewebhookkubecallsfailing
      - alert: AgentWorkspaceWebhookOverloaded
        expr: sum(rate(agent_workspace_webhook_connections_refused_total{ {{- $sel -}} }[5m])) > 0 or max(agent_workspace_webhook_requests_in_flight{ {{- $sel -}} }) > {{ mulf $r.inFlightRatio (.Values.settings.maxInFlight | default 256) }}
        for: 5m
        labels: {severity: warning}
        annotations:
          summary: The webhook refuses connections or is near its in-flight limit.
          description: Refused connections (connections_refused_total by reason) or admissions in flight near WEBHOOK_MAX_IN_FLIGHT. Add replicas, or look for slow or hostile clients on port 8443.
          runbook_url: {{ $runbook }}#agentworkspacewebhookoverloaded
      - alert: AgentWorkspaceWebhookCertificateExpiring
        expr: min(agent_workspace_webhook_certificate_expiry_timestamp_seconds{ {{- $sel -}} }) - time() < {{ mul $r.certificateExpiryDays 86400 }}
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: A serving certificate of the webhook expires within {{ $r.certificateExpiryDays }} days.
          description: Once it has expired the API server refuses to call the webhook and no agent run starts. With `agent-workspace-webhook certs`, run it again with the same --out (it keeps the CA) and apply; cert-manager renews 30 days ahead, so look at why it did not (kubectl describe certificate).
          runbook_url: {{ $runbook }}#agentworkspacewebhookcertificateexpiring
      - alert: AgentWorkspacePVCsPending
        expr: max(agent_workspace_webhook_workspace_pvcs{ {{- $sel -}}, state="Pending"}) > 0
        for: {{ $r.pendingMinutes }}m
        labels: {severity: warning}
        annotations:
          summary: Workspace PVCs have been Pending for {{ $r.pendingMinutes }} minutes.
          description: Their runs cannot start. `kubectl describe pvc` shows the provisioner's events (a class that cannot clone, a full storage pool, a missing class); `agent-workspace-webhook workspaces` lists them.
          runbook_url: {{ $runbook }}#agentworkspacepvcspending
      - alert: AgentWorkspacesStuckDeleting
        expr: max(agent_workspace_webhook_workspace_pvcs{ {{- $sel -}}, state="deleting"}) > 0 and on() sum(increase(agent_workspace_webhook_requests_total{ {{- $sel -}}, decision="denied"}[15m])) > 0
        for: {{ $r.deletingMinutes }}m
        labels: {severity: warning}
        annotations:
          summary: Workspaces have been being deleted for {{ $r.deletingMinutes }} minutes while runs are denied.
          description: A workspace being deleted is never handed out (409); pvc-protection holds it while a Pod mounts it. `agent-workspace-webhook workspaces` shows who mounts it; delete those Pods or let them finish.
          runbook_url: {{ $runbook }}#agentworkspacesstuckdeleting
      - alert: AgentWorkspaceCodeRunsUnserved
        expr: max(agent_workspace_webhook_cache_resource_unserved{ {{- $sel -}}, cache="CodeRun"}) > 0
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: The CodeRun CRD has not been served for 10 minutes.
          description: Agent Pods are still admitted, but no run can ask for a fresh workspace (the webhook sees no CodeRun). Install or repair the platform's CodeRun CRD; the webhook picks it up without a restart.
          runbook_url: {{ $runbook }}#agentworkspacecoderunsunserved
      - alert: AgentWorkspaceNearlyFull
        expr: max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_used_bytes / kubelet_volume_stats_capacity_bytes) > {{ $r.fullRatio }} and on (namespace, persistentvolumeclaim) kube_persistentvolumeclaim_labels{label_app_kubernetes_io_managed_by="agent-workspace-webhook"}
        for: 15m
        labels: {severity: warning}
        annotations:
          summary: 'Workspace {{ "{{ $labels.namespace }}/{{ $labels.persistentvolumeclaim }}" }} is over {{ mulf $r.fullRatio 100 }}% full.'
          description: The agent's next writes may fail. Raise WEBHOOK_STORAGE_SIZE with WEBHOOK_GROW_EXISTING on (its class must allow expansion), or start the agent fresh. Needs kube-state-metrics with --metric-labels-allowlist=persistentvolumeclaims=[app.kubernetes.io/managed-by].
          runbook_url: {{ $runbook }}#agentworkspacenearlyfull
{{- end }}
