{{- define "neurocortex.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "neurocortex.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "neurocortex.secretName" -}}
{{- default (include "neurocortex.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "neurocortex.env" -}}
{{- range $name, $value := .Values.settings }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
- name: NEUROCORTEX_DATA_DIR
  value: /var/lib/neurocortex
{{- end -}}
