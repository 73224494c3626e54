{{/*
Every object is named after the release (`helm install console ...` gives the Deployment `console`, as in the
plain manifests and the commands of docs/deploy.md), except the ones named after identityPrefix: the
ServiceAccount and the cluster's RBAC, which must be the names `register_cluster --setup` gives them.
*/}}

{{- define "kube-service-console.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kube-service-console
{{- end }}

{{/* The web server's pods: the Deployment, its Service, PodDisruptionBudget and topology spread select these. */}}
{{- define "kube-service-console.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: web
{{- end }}

{{- define "kube-service-console.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "kube-service-console.secretName" -}}
{{ .Values.secrets.existingSecret | default (printf "%s-secrets" .Release.Name) }}
{{- end }}

{{- define "kube-service-console.oidcCaFile" -}}
/etc/kube-service-console/oidc-ca/{{ .Values.oidc.caBundle.key }}
{{- end }}

{{/* The settings and secrets of every container that runs the console (the web server, the migration, the
registration): one environment, so that each reads the same database with the same keys. */}}
{{- define "kube-service-console.environment" -}}
envFrom:
  - configMapRef:
      name: {{ .Release.Name }}-config
  - secretRef:
      name: {{ include "kube-service-console.secretName" . }}
  {{- with .Values.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- if or .Values.database.existingSecret .Values.oidc.issuer }}
env:
  {{- with .Values.database.existingSecret }}
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ . }}
        key: {{ $.Values.database.existingSecretKey }}
  {{- end }}
  {{- if .Values.oidc.issuer }}
  - name: CONSOLE_OIDC_CLIENT_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ .Values.oidc.clientSecret.existingSecret }}
        key: {{ .Values.oidc.clientSecret.key }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The restricted Pod Security profile, for every pod and container of the chart. */}}
{{- define "kube-service-console.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "kube-service-console.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* The root filesystem is read-only: /tmp (gunicorn's heartbeat files, the metrics folder) is the only place
written, in memory and counted in the memory limit. */}}
{{- define "kube-service-console.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.oidc.caBundle.configMap }}
- name: oidc-ca
  mountPath: /etc/kube-service-console/oidc-ca
  readOnly: true
{{- end }}
{{- end }}

{{/* Called with (dict "root" $ "tmpSize" "64Mi"). */}}
{{- define "kube-service-console.volumes" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .tmpSize }}
{{- with .root.Values.oidc.caBundle }}
{{- if .configMap }}
- name: oidc-ca
  configMap:
    name: {{ .configMap }}
    items:
      - key: {{ .key }}
        path: {{ .key }}
{{- end }}
{{- end }}
{{- end }}

{{/*
What the values cannot say on their own (values.schema.json checks the types and names). In `helm lint` a
`fail` only logs, so the tests render these cases with `helm template` too.
*/}}
{{- define "kube-service-console.validate" -}}
{{- $secret := dict "CONSOLE_SECRET_KEY" "secrets" "CONSOLE_ENCRYPTION_KEYS" "secrets" "DATABASE_URL" "database" "CONSOLE_OIDC_CLIENT_SECRET" "oidc.clientSecret" "CONSOLE_METRICS_TOKEN" "extraEnvFrom" }}
{{- $owned := dict "CONSOLE_ENV" "the chart (production)" "CONSOLE_IDENTITY_PREFIX" "identityPrefix" "CONSOLE_OIDC_ISSUER" "oidc.issuer" "CONSOLE_OIDC_CLIENT_ID" "oidc.clientId" "CONSOLE_OIDC_CA_FILE" "oidc.caBundle" "CONSOLE_IN_CLUSTER_NAME" "register.clusterName" }}
{{- range $name, $_ := .Values.config }}
{{- if hasKey $secret $name }}
{{- fail (printf "config.%s is a secret: give it through %s, never in the ConfigMap" $name (get $secret $name)) }}
{{- end }}
{{- if hasKey $owned $name }}
{{- fail (printf "config.%s is set from %s" $name (get $owned $name)) }}
{{- end }}
{{- end }}
{{- if .Values.secrets.existingSecret }}
{{- if .Values.database.url }}
{{- fail "database.url goes in the chart's Secret, and secrets.existingSecret replaces it: put DATABASE_URL in your Secret, or name it in database.existingSecret" }}
{{- end }}
{{- else if not (or .Values.database.url .Values.database.existingSecret) }}
{{- fail "the console needs its PostgreSQL database: set database.url, database.existingSecret, or secrets.existingSecret holding DATABASE_URL" }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "set database.url or database.existingSecret, not both" }}
{{- end }}
{{- if or .Values.oidc.issuer .Values.oidc.clientId }}
{{- if not (and .Values.oidc.issuer .Values.oidc.clientId .Values.oidc.clientSecret.existingSecret) }}
{{- fail "single sign-on needs oidc.issuer, oidc.clientId and oidc.clientSecret.existingSecret" }}
{{- end }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}
{{- fail "ingress.enabled needs ingress.host" }}
{{- end }}
{{- end }}
