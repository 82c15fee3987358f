{{/* Labels on every object. The first line is what the plain manifests carry. */}}
{{- define "nfs-subdir-csi.labels" -}}
app.kubernetes.io/name: nfs-subdir-csi
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels: fixed (not per release), because selectors are immutable and
     the plain manifests use the same ones. */}}
{{- define "nfs-subdir-csi.selectorLabels" -}}
app.kubernetes.io/name: nfs-subdir-csi
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "nfs-subdir-csi.image" -}}
{{ .repository }}:{{ .tag }}
{{- end -}}

{{/* The driver's own container image (tag defaults to the chart's appVersion). */}}
{{- define "nfs-subdir-csi.driverImage" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Optional driver flags shared by both roles. */}}
{{- define "nfs-subdir-csi.driverFlags" -}}
{{- with .Values.driver.defaultOnDeletePolicy }}
- --default-ondelete-policy={{ . }}
{{- end }}
{{- with .Values.driver.mountPermissions }}
- --mount-permissions={{ . }}
{{- end }}
{{- with .Values.driver.logFormat }}
- --log-format={{ . }}
{{- end }}
{{- range .Values.driver.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}

{{/* The install mode, checked: "csi" (the CSI driver, as deploy/*.yaml) or "provisioner" (the
     sidecar-free `nfs-subdir-csi provisioner`, as deploy/provisioner/*.yaml). */}}
{{- define "nfs-subdir-csi.mode" -}}
{{- $mode := .Values.mode | default "csi" -}}
{{- if not (has $mode (list "csi" "provisioner")) -}}
{{- fail (printf "mode must be csi or provisioner, not %q" $mode) -}}
{{- end -}}
{{- $mode -}}
{{- end -}}
