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

{{/* The image: repository@digest when image.digest is set (the tag is then ignored), else repository:tag. */}}
{{- define "agent-workspace-webhook.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (toString (.Values.image.tag | default .Chart.AppVersion)) }}
{{- end }}
{{- end }}

{{/* A label selector (list base more) as YAML: base with more's matchLabels merged in (base's win) and its
matchExpressions appended (webhook.namespaceSelector, webhook.objectSelector). */}}
{{- define "agent-workspace-webhook.selectorPlus" -}}
{{- $base := deepCopy (index . 0) }}
{{- $more := index . 1 | default dict }}
{{- with $more.matchLabels }}
{{- $_ := set $base "matchLabels" (merge ($base.matchLabels | default dict) (deepCopy .)) }}
{{- end }}
{{- with $more.matchExpressions }}
{{- $_ := set $base "matchExpressions" (concat ($base.matchExpressions | default list) .) }}
{{- end }}
{{- toYaml $base }}
{{- end }}

{{/* The webhook's ServiceAccount: serviceAccount.name, else the fullname. */}}
{{- define "agent-workspace-webhook.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "agent-workspace-webhook.fullname" .) }}
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

{{/* Values that would install without complaint but leave the webhook broken, beyond what
values.schema.json says (enumerations, names and patterns are there). */}}
{{- define "agent-workspace-webhook.validate" -}}
{{- $s := .Values.settings }}
{{- if $s.storage.size }}
{{- $problem := include "agent-workspace-webhook.storageSizeProblem" (toString $s.storage.size) | trim }}
{{- if $problem }}{{ fail $problem }}{{ end }}
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
{{- if eq (int .Values.securePort) (int .Values.metricsPort) }}
{{- fail (printf "securePort and metricsPort must differ, both are %d" (int .Values.securePort)) }}
{{- end }}
{{- if and .Values.installCRD (or (ne ($s.coderunGroup | default "agents.platform") "agents.platform") (ne ($s.coderunVersion | default "v1") "v1") (ne ($s.coderunPlural | default "coderuns") "coderuns")) }}
{{- fail "installCRD is the stand-in for coderuns.agents.platform v1: it cannot be combined with settings.coderunGroup, coderunVersion or coderunPlural" }}
{{- end }}
{{- end }}
