{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "corsair-cp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, unless it already holds the chart name. */}}
{{- define "corsair-cp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "corsair-cp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "corsair-cp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "corsair-cp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "corsair-cp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: corsair
{{- end }}

{{- define "corsair-cp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "corsair-cp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "corsair-cp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Secret names: the chart's own when the value is given, else the documented existing one. */}}
{{- define "corsair-cp.databaseSecret" -}}
{{- if .Values.database.url }}{{ include "corsair-cp.fullname" . }}-database{{ else }}{{ .Values.database.existingSecret }}{{ end }}
{{- end }}
{{- define "corsair-cp.signingKeySecret" -}}
{{- if .Values.signingKey.value }}{{ include "corsair-cp.fullname" . }}-signing-key{{ else }}{{ .Values.signingKey.existingSecret }}{{ end }}
{{- end }}
{{- define "corsair-cp.bootstrapSecret" -}}
{{- if .Values.bootstrapAdmin.password }}{{ include "corsair-cp.fullname" . }}-bootstrap-admin{{ else }}{{ .Values.bootstrapAdmin.existingSecret }}{{ end }}
{{- end }}
{{- /* Empty for a public client, or with single sign-on off: then nothing is mounted. */}}
{{- define "corsair-cp.oidcSecret" -}}
{{- if .Values.oidc.issuerUrl }}{{ if .Values.oidc.clientSecret.value }}{{ include "corsair-cp.fullname" . }}-oidc{{ else }}{{ .Values.oidc.clientSecret.existingSecret }}{{ end }}{{ end }}
{{- end }}

{{/* The key inside each Secret (fixed when the chart creates it). */}}
{{- define "corsair-cp.databaseKey" -}}
{{- if .Values.database.url }}url{{ else }}{{ .Values.database.existingSecretKey }}{{ end }}
{{- end }}
{{- define "corsair-cp.signingKeyKey" -}}
{{- if .Values.signingKey.value }}signing.key{{ else }}{{ .Values.signingKey.existingSecretKey }}{{ end }}
{{- end }}
{{- define "corsair-cp.bootstrapKey" -}}
{{- if .Values.bootstrapAdmin.password }}password{{ else }}{{ .Values.bootstrapAdmin.existingSecretKey }}{{ end }}
{{- end }}
{{- define "corsair-cp.oidcKey" -}}
{{- if .Values.oidc.clientSecret.value }}client-secret{{ else }}{{ .Values.oidc.clientSecret.existingSecretKey }}{{ end }}
{{- end }}

{{/* The restricted Pod Security Standard, shared by the Deployment and the Job. */}}
{{- define "corsair-cp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- define "corsair-cp.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The database URL as an environment variable from its Secret. */}}
{{- define "corsair-cp.databaseEnv" -}}
- name: CORSAIR_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "corsair-cp.databaseSecret" . }}
      key: {{ include "corsair-cp.databaseKey" . }}
{{- end }}

{{/* HTTP or HTTPS for probes: with TLS both listeners speak TLS. */}}
{{- define "corsair-cp.probeScheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* Replicas that can be running: the HPA's floor when it owns the count. */}}
{{- define "corsair-cp.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}
