{{- define "llmgw.name" -}}llm-gateway{{- end -}}

{{- define "llmgw.fullname" -}}
{{- if contains "llm-gateway" .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-llm-gateway" .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "llmgw.labels" -}}
app.kubernetes.io/name: llm-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "llmgw.selector" -}}
app.kubernetes.io/name: llm-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llmgw.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}

{{- define "llmgw.quotaName" -}}{{ include "llmgw.fullname" . }}-quota{{- end -}}
{{- define "llmgw.injectorName" -}}{{ include "llmgw.fullname" . }}-injector{{- end -}}
{{- define "llmgw.tlsSecret" -}}{{ include "llmgw.injectorName" . }}-tls{{- end -}}

{{- define "llmgw.quotaAddress" -}}{{ include "llmgw.quotaName" . }}.{{ .Release.Namespace }}.svc:{{ .Values.quota.port }}{{- end -}}

{{/* The restricted security context every container of the chart runs under. */}}
{{- define "llmgw.containerSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.sidecar.runAsUser }}
runAsGroup: {{ .Values.sidecar.runAsUser }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "llmgw.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.sidecar.runAsUser }}
runAsGroup: {{ .Values.sidecar.runAsUser }}
fsGroup: {{ .Values.sidecar.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The sidecar's config file (JSON, which is YAML too), as the sidecar validates it. */}}
{{- define "llmgw.sidecarConfig" -}}
{{- $cfg := dict "providers" .Values.sidecar.providers "models" .Values.sidecar.models "logging" .Values.sidecar.logging "storage" (dict "path" "/var/lib/llm-gateway/llmgw.db") -}}
{{- if .Values.sidecar.cache }}{{ $_ := set $cfg "cache" .Values.sidecar.cache }}{{ end -}}
{{- if .Values.sidecar.rateLimits }}{{ $_ := set $cfg "rateLimits" .Values.sidecar.rateLimits }}{{ end -}}
{{- if .Values.quota.enabled }}{{ $_ := set $cfg "quota" (merge (dict "address" (include "llmgw.quotaAddress" .)) .Values.sidecar.quota) }}{{ end -}}
{{- toPrettyJson $cfg -}}
{{- end -}}

{{/* The injector's config file. */}}
{{- define "llmgw.injectorConfig" -}}
{{- $native := dict "mode" .Values.injector.nativeSidecar.mode "minVersion" (toString .Values.injector.nativeSidecar.minVersion) "kubernetesVersion" (.Values.injector.nativeSidecar.kubernetesVersion | default .Capabilities.KubeVersion.Version) -}}
{{- $cfg := dict "image" (include "llmgw.image" .) "imagePullPolicy" .Values.image.pullPolicy "releaseNamespace" .Release.Namespace "excludedNamespaces" .Values.injector.excludedNamespaces "nativeSidecar" $native "configMapName" .Values.sidecar.configMapName "resources" (dict "cpuRequest" .Values.sidecar.resources.requests.cpu "memoryRequest" .Values.sidecar.resources.requests.memory "cpuLimit" .Values.sidecar.resources.limits.cpu "memoryLimit" .Values.sidecar.resources.limits.memory) "dataSizeLimit" .Values.sidecar.dataSizeLimit "tmpSizeLimit" .Values.sidecar.tmpSizeLimit "injectJobs" .Values.injector.injectJobs "preStopSeconds" .Values.sidecar.preStopSeconds "runAsUser" .Values.sidecar.runAsUser -}}
{{- if .Values.quota.enabled }}{{ $_ := set $cfg "quotaAddress" (include "llmgw.quotaAddress" .) }}{{ end -}}
{{- if .Values.sidecar.providerSecretName }}{{ $_ := set $cfg "providerSecretName" .Values.sidecar.providerSecretName }}{{ end -}}
{{- toPrettyJson $cfg -}}
{{- end -}}
