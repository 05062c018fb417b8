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

{{/* The probe command under TLS: `cebus health` against the pod's own port,
     checking the server certificate like a client would; under mTLS it
     presents the pod's certificate. Takes (dict "root" $ "timeoutSeconds" N). */}}
{{- define "cebus.tlsProbeCommand" -}}
{{- $v := .root.Values -}}
{{- $dir := $v.tls.mountPath -}}
- /usr/local/bin/cebus
- --addr
- {{ printf "127.0.0.1:%d" (int $v.server.port) | quote }}
- --tls-ca
- {{ printf "%s/%s" $dir $v.tls.probe.caKey | quote }}
- --tls-server-name
- {{ default (printf "%s.%s.svc" (include "cebus.fullname" .root) .root.Release.Namespace) $v.tls.probe.serverName | quote }}
{{- if $v.tls.clientCaKey }}
- --tls-cert
- {{ printf "%s/%s" $dir $v.tls.certKey | quote }}
- --tls-key
- {{ printf "%s/%s" $dir $v.tls.keyKey | quote }}
{{- end }}
- --timeout-ms
- {{ mul (int .timeoutSeconds) 1000 | toString | quote }}
- health
{{- end -}}
