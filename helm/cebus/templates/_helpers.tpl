{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "cebus.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name, plus the chart name unless it already holds it. */}}
{{- define "cebus.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cebus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cebus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cebus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cebus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "cebus.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The database URL and the migrations directory: what both cebusd serve and
     cebusd migrate need. */}}
{{- define "cebus.databaseEnv" -}}
- name: CEBUS_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required" .Values.database.existingSecret }}
      key: {{ .Values.database.key }}
- name: CEBUS_MIGRATIONS_DIR
  value: {{ .Values.migrationsDir | quote }}
- name: CEBUS_LOG_LEVEL
  value: {{ .Values.server.logLevel | quote }}
{{- end -}}
