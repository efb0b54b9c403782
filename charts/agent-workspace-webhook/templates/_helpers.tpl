{{/* The name of the app: the app.kubernetes.io/name label. */}}
{{- define "agent-workspace-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of every object: <release>, or <release>-<name> if the release does not contain the name. */}}
{{- define "agent-workspace-webhook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "agent-workspace-webhook.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The chart's name and version, as the helm.sh/chart label takes it. */}}
{{- define "agent-workspace-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The labels of every object the chart renders: the Kubernetes recommended ones and helm.sh/chart.
manifests/ carries only app.kubernetes.io/name (tests/e2e/test_helm.py compares the rest).
*/}}
{{- define "agent-workspace-webhook.labels" -}}
{{ include "agent-workspace-webhook.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "agent-workspace-webhook.chart" . }}
{{- end }}

{{/* What selects the webhook's Pods (Service, PodDisruptionBudget, NetworkPolicy, anti-affinity,
monitors): labels that never change with an upgrade. */}}
{{- define "agent-workspace-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-workspace-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "agent-workspace-webhook.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "agent-workspace-webhook.fullname" .)) }}
{{- end }}

{{/* The serving Certificate of the certManager source, for cert-manager.io/inject-ca-from. */}}
{{- define "agent-workspace-webhook.servingCertificate" -}}
{{- printf "%s-serving" (include "agent-workspace-webhook.fullname" .) }}
{{- end }}

{{/* tls.caBundle as the base64 of a PEM CA, whether it was given as PEM or as base64 already. */}}
{{- define "agent-workspace-webhook.caBundle" -}}
{{- $ca := .Values.tls.caBundle | default "" }}
{{- if hasPrefix "-----BEGIN CERTIFICATE-----" (trim $ca) }}
{{- $ca | b64enc }}
{{- else if and (trim $ca) (hasPrefix "-----BEGIN CERTIFICATE-----" (b64dec (trim $ca))) }}
{{- trim $ca }}
{{- else if trim $ca }}
{{- fail (printf "tls.caBundle must be a PEM CA certificate (-----BEGIN CERTIFICATE-----...) or its base64, not %q" (trunc 40 $ca)) }}
{{- end }}
{{- end }}

{{/*
The WEBHOOK_* variables of the Deployment, as a YAML list: every key of .Values.settings that is
set, named WEBHOOK_<KEY IN SNAKE CASE> (maps and lists as JSON, whole numbers without an
exponent); the webhook's own defaults (settings.py) apply to the rest.
*/}}
{{- define "agent-workspace-webhook.env" -}}
{{- $s := .Values.settings }}
{{- $env := list (dict "name" "WEBHOOK_NAMING_MODE" "value" $s.namingMode) }}
{{- $selector := list }}
{{- range $key, $value := .Values.workspaceNamespaces }}{{ $selector = append $selector (printf "%s=%s" $key $value) }}{{ end }}
{{- $env = append $env (dict "name" "WEBHOOK_NAMESPACE_SELECTOR" "value" (join "," $selector)) }}
{{- $env = append $env (dict "name" "WEBHOOK_OWN_NAMESPACE" "value" .Release.Namespace) }}
{{- $class := $s.storage.className }}
{{- if and (not $class) .Values.workspaceStorageClass.create }}{{ $class = .Values.workspaceStorageClass.name }}{{ end }}
{{- $storage := dict "storageSize" $s.storage.size "storageClass" $class "accessModes" $s.storage.accessModes }}
{{- range $key, $value := merge (omit $s "namingMode" "storage") $storage }}
{{- $unset := or (kindIs "invalid" $value) (and (kindIs "string" $value) (eq $value "")) (and (or (kindIs "map" $value) (kindIs "slice" $value)) (empty $value)) }}
{{- if not $unset }}
{{- $text := toString $value }}
{{- if or (kindIs "map" $value) (kindIs "slice" $value) }}{{ $text = toJson $value }}
{{- else if and (kindIs "float64" $value) (eq (float64 (int64 $value)) $value) }}{{ $text = toString (int64 $value) }}{{ end }}
{{- $env = append $env (dict "name" (printf "WEBHOOK_%s" (upper (snakecase $key))) "value" $text) }}
{{- end }}
{{- end }}
{{- $set := dict }}
{{- range $env }}{{ $_ := set $set .name true }}{{ end }}
{{- range .Values.extraEnv }}
{{- if hasKey $set .name }}
{{- fail (printf "extraEnv: %s is already set by the chart's values (settings.*); set it there" .name) }}
{{- end }}
{{- end }}
{{- toYaml (concat $env .Values.extraEnv) }}
{{- end }}

{{/* Values that would install without complaint but leave the webhook broken. */}}
{{- define "agent-workspace-webhook.validate" -}}
{{- $s := .Values.settings }}
{{- if not (has $s.namingMode (list "legacy" "dual" "agent")) }}
{{- fail (printf "settings.namingMode must be legacy, dual or agent, not %q" (toString $s.namingMode)) }}
{{- end }}
{{- $label := "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" }}
{{- if and $s.legacyOwner (not (regexMatch $label (toString $s.legacyOwner))) }}
{{- fail (printf "settings.legacyOwner must be an agent name (a DNS-1123 label such as rex), not %q" (toString $s.legacyOwner)) }}
{{- end }}
{{- range $app, $agent := $s.agentTable }}
{{- if not (regexMatch $label (toString $agent)) }}
{{- fail (printf "settings.agentTable: %s maps to %q, which is not an agent name (a DNS-1123 label such as rex)" $app (toString $agent)) }}
{{- end }}
{{- end }}
{{- if and $s.agentPattern (not (contains "(?P<agent>" (toString $s.agentPattern))) }}
{{- fail (printf "settings.agentPattern needs a named group (?P<agent>...), which %q has not" (toString $s.agentPattern)) }}
{{- end }}
{{- range $s.sharedGroups }}
{{- if or (not (kindIs "map" .)) (not .agents) }}
{{- fail (printf "settings.sharedGroups: each group is {agents: [...], suffix: ...}, not %s" (toJson .)) }}
{{- end }}
{{- end }}
{{- if $s.storage.size }}
{{- $problem := include "agent-workspace-webhook.storageSizeProblem" (toString $s.storage.size) | trim }}
{{- if $problem }}{{ fail $problem }}{{ end }}
{{- end }}
{{- range $s.storage.accessModes }}
{{- if not (has . (list "ReadWriteOnce" "ReadWriteOncePod" "ReadWriteMany" "ReadOnlyMany")) }}
{{- fail (printf "settings.storage.accessModes: %q is not ReadWriteOnce, ReadWriteOncePod, ReadWriteMany or ReadOnlyMany" (toString .)) }}
{{- end }}
{{- end }}
{{- if not (has .Values.tls.source (list "secret" "inline" "certManager")) }}
{{- fail (printf "tls.source must be secret, inline or certManager, not %q" (toString .Values.tls.source)) }}
{{- end }}
{{- if eq .Values.tls.source "inline" }}
{{- if not (and .Values.tls.cert .Values.tls.key .Values.tls.caBundle) }}
{{- fail "tls.source inline needs tls.cert, tls.key and tls.caBundle (--set-file tls.cert=tls.crt,tls.key=tls.key,tls.caBundle=ca.crt)" }}
{{- end }}
{{- if not (hasPrefix "-----BEGIN" (trim .Values.tls.key)) }}
{{- fail "tls.key must be a PEM private key (-----BEGIN ... PRIVATE KEY-----)" }}
{{- end }}
{{- if not (hasPrefix "-----BEGIN CERTIFICATE-----" (trim .Values.tls.cert)) }}
{{- fail "tls.cert must be a PEM certificate (-----BEGIN CERTIFICATE-----)" }}
{{- end }}
{{- end }}
{{- if not (has .Values.webhook.failurePolicy (list "Fail" "Ignore")) }}
{{- fail (printf "webhook.failurePolicy must be Fail or Ignore, not %q" (toString .Values.webhook.failurePolicy)) }}
{{- end }}
{{- end }}
