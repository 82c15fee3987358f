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
{{- if contains "nfs-subdir-external-provisioner" (toString .Values.image.repository) -}}
{{- /* An old values.yaml copied whole names the old provisioner's image: use this chart's. */ -}}
ghcr.io/nfs-subdir-csi/nfs-subdir-csi:{{ .Chart.AppVersion }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
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
{{- if include "nfs-subdir-csi.oldValues" . -}}
{{- $mode = "provisioner" -}}
{{- end -}}
{{- if not (has $mode (list "csi" "provisioner")) -}}
{{- fail (printf "mode must be csi or provisioner, not %q" $mode) -}}
{{- end -}}
{{- $mode -}}
{{- end -}}


{{/* nfs-subdir-external-provisioner's values (nfs.server, nfs.path, nfs.mountOptions,
     storageClass.*; docs/migrate-from-nfs-subdir-external-provisioner.md): "true" when given.
     They select mode=provisioner, its export as the default share, and its one StorageClass. */}}
{{- define "nfs-subdir-csi.oldValues" -}}
{{- if and .Values.nfs (kindIs "map" .Values.nfs) .Values.nfs.server -}}true{{- end -}}
{{- end -}}

{{/* The provisioner name: provisioner.name, or with the old values the name the old chart gave
     (storageClass.provisionerName, else cluster.local/<its fullname>), so its classes and PVs
     are taken over as they are. */}}
{{- define "nfs-subdir-csi.provisionerName" -}}
{{- if include "nfs-subdir-csi.oldValues" . -}}
{{- $sc := .Values.storageClass | default dict -}}
{{- $chart := "nfs-subdir-external-provisioner" -}}
{{- $full := ternary .Release.Name (printf "%s-%s" .Release.Name $chart) (contains $chart .Release.Name) -}}
{{- $sc.provisionerName | default (printf "cluster.local/%s" ($full | trunc 63 | trimSuffix "-")) -}}
{{- else -}}
{{- required "provisioner.name is required" .Values.provisioner.name -}}
{{- end -}}
{{- end -}}

{{/* The default share's NFS export: provisioner.nfs, or the old values' nfs. */}}
{{- define "nfs-subdir-csi.nfsServer" -}}
{{- if include "nfs-subdir-csi.oldValues" . -}}{{ .Values.nfs.server | toString }}
{{- else -}}{{ required "provisioner.nfs.server is required" .Values.provisioner.nfs.server | toString }}
{{- end -}}
{{- end -}}
{{- define "nfs-subdir-csi.nfsPath" -}}
{{- if include "nfs-subdir-csi.oldValues" . -}}{{ required "nfs.path is required" .Values.nfs.path }}
{{- else -}}{{ required "provisioner.nfs.path is required" .Values.provisioner.nfs.path }}
{{- end -}}
{{- end -}}

{{/* The provisioner's StorageClasses as YAML (a list under "classes"): provisioner.storageClasses,
     or the one class the old chart made from storageClass.* (archiveOnDelete always written, as
     it did; pathPattern and onDelete when set; nfs.mountOptions as its mountOptions). */}}
{{- define "nfs-subdir-csi.provisionerClasses" -}}
{{- if include "nfs-subdir-csi.oldValues" . -}}
{{- $sc := .Values.storageClass | default dict -}}
{{- if ne (toString $sc.create) "false" -}}
{{- $params := dict "archiveOnDelete" (toString (ternary true $sc.archiveOnDelete (kindIs "invalid" $sc.archiveOnDelete))) -}}
{{- with $sc.pathPattern }}{{ $_ := set $params "pathPattern" . }}{{ end -}}
{{- with $sc.onDelete }}{{ $_ := set $params "onDelete" . }}{{ end -}}
{{- $class := dict "name" ($sc.name | default "nfs-client") "parameters" $params
    "reclaimPolicy" ($sc.reclaimPolicy | default "Delete")
    "volumeBindingMode" ($sc.volumeBindingMode | default "Immediate")
    "allowVolumeExpansion" (ternary true $sc.allowVolumeExpansion (kindIs "invalid" $sc.allowVolumeExpansion)) -}}
{{- with .Values.nfs.mountOptions }}{{ $_ := set $class "mountOptions" . }}{{ end -}}
{{- if $sc.defaultClass }}{{ $_ := set $class "annotations" (dict "storageclass.kubernetes.io/is-default-class" "true") }}{{ end -}}
{{- toYaml (dict "classes" (list $class)) -}}
{{- else -}}
{{- toYaml (dict "classes" list) -}}
{{- end -}}
{{- else -}}
{{- toYaml (dict "classes" .Values.provisioner.storageClasses) -}}
{{- end -}}
{{- end -}}
