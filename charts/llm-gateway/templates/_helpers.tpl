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
{{- define "llmgw.quotaTlsSecret" -}}{{ include "llmgw.quotaName" . }}-tls{{- end -}}
{{- define "llmgw.quotaCaSecret" -}}{{ include "llmgw.quotaName" . }}-ca{{- end -}}
{{- define "llmgw.quotaAdminSecret" -}}{{ .Values.quota.admin.existingSecret | default (printf "%s-admin" (include "llmgw.quotaName" .)) }}{{- end -}}

{{- define "llmgw.quotaAddress" -}}{{ include "llmgw.quotaName" . }}.{{ .Release.Namespace }}.svc:{{ .Values.quota.port }}{{- end -}}

{{/* quota.store=postgres: several replicas over one database, with a headless Service beside the normal one. */}}
{{- define "llmgw.quotaPostgres" -}}{{ if eq (.Values.quota.store | default "sqlite") "postgres" }}true{{ end }}{{- end -}}
{{- define "llmgw.quotaHeadlessName" -}}{{ include "llmgw.quotaName" . }}-headless{{- end -}}
{{/* The sidecars' quota.address: with replicas, every replica's address from the headless Service's A records (grpc-js connects to each and goes round robin). */}}
{{- define "llmgw.sidecarQuotaAddress" -}}
{{- if include "llmgw.quotaPostgres" . -}}dns:///{{ include "llmgw.quotaHeadlessName" . }}.{{ .Release.Namespace }}.svc.cluster.local:{{ .Values.quota.port }}{{- else -}}{{ include "llmgw.quotaAddress" . }}{{- end -}}
{{- end -}}

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

{{/* Where the injected sidecar finds things (injector-webhook/patch.ts: CONFIG_DIR, TOKEN_DIR). */}}
{{- define "llmgw.sidecarQuotaCaFile" -}}/etc/llm-gateway/quota-ca.crt{{- end -}}
{{- define "llmgw.sidecarTokenFile" -}}/var/run/secrets/llm-gateway/token/token{{- end -}}
{{- define "llmgw.providersDir" -}}/var/run/secrets/llm-gateway/providers/{{- end -}}

{{- define "llmgw.quotaTlsOn" -}}{{ if and .Values.quota.enabled .Values.quota.tls.enabled }}true{{ end }}{{- end -}}
{{- define "llmgw.keysFromQuota" -}}{{ if eq .Values.sidecar.providerKeys.mode "quota" }}true{{ end }}{{- end -}}

{{/* Providers as the sidecar gets them: in quota mode, a provider that names a key takes it from the quota service. */}}
{{- define "llmgw.sidecarProviders" -}}
{{- $out := dict -}}
{{- range $id, $p := .Values.sidecar.providers -}}
{{- if and (include "llmgw.keysFromQuota" $) (or $p.apiKeyFile $p.apiKey $p.apiKeyName $p.apiKeyFrom) -}}
{{- $q := omit $p "apiKey" "apiKeyFile" -}}
{{- $_ := set $q "apiKeyFrom" "quota" -}}
{{- /* The key keeps the name it had as a file of the provider Secret, so that Secret's keys carry over to keys.yaml. */ -}}
{{- if and $p.apiKeyFile (not $p.apiKeyName) (ne (base $p.apiKeyFile) $id) }}{{ $_ := set $q "apiKeyName" (base $p.apiKeyFile) }}{{ end -}}
{{- $_ := set $out $id $q -}}
{{- else -}}
{{- $_ := set $out $id $p -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The sidecar's config file (JSON, which is YAML too), as the sidecar validates it. */}}
{{- define "llmgw.sidecarConfig" -}}
{{- $cfg := dict "providers" (include "llmgw.sidecarProviders" . | fromJson) "models" .Values.sidecar.models "logging" .Values.sidecar.logging "storage" (dict "path" "/var/lib/llm-gateway/llmgw.db") -}}
{{- if .Values.sidecar.cache }}{{ $_ := set $cfg "cache" .Values.sidecar.cache }}{{ end -}}
{{- if .Values.sidecar.rateLimits }}{{ $_ := set $cfg "rateLimits" .Values.sidecar.rateLimits }}{{ end -}}
{{- if .Values.sidecar.tracing }}{{ $_ := set $cfg "tracing" .Values.sidecar.tracing }}{{ end -}}
{{- if .Values.quota.enabled -}}
{{- $quota := dict "address" (include "llmgw.sidecarQuotaAddress" .) "tokenFile" (include "llmgw.sidecarTokenFile" .) -}}
{{- if include "llmgw.quotaTlsOn" . -}}
{{- $tls := dict "caFile" (include "llmgw.sidecarQuotaCaFile" .) -}}
{{- /* The headless name is not on the service's certificate (nor on one an issuer made for the Service): the certificate is checked for the Service's name. */ -}}
{{- if include "llmgw.quotaPostgres" . }}{{ $_ := set $tls "serverName" (printf "%s.%s.svc" (include "llmgw.quotaName" .) .Release.Namespace) }}{{ end -}}
{{- $_ := set $quota "tls" $tls -}}
{{- end -}}
{{- $_ := set $cfg "quota" (merge $quota (deepCopy .Values.sidecar.quota)) -}}
{{- end -}}
{{- toPrettyJson $cfg -}}
{{- end -}}

{{/*
The quota service's TLS material, made once per render and shared by every template that needs it (the
Secret, the cert-manager objects, the sidecar ConfigMaps): JSON with
  serving: {crt, key, ca}  base64, the Secret the chart makes when cert-manager is off;
  ca:      {crt, key}      base64, the CA cert-manager signs with when it has no issuerRef;
  caPem:                   the CA certificate(s) the sidecars trust.
Generated material is kept across upgrades: an existing Secret is reused (lookup), as for the injector.
Made once because genCA is random: a second call would give the sidecars a CA that signed nothing. The
result is kept in .Values, which every template of the render shares (the schema forbids that key to users).
*/}}
{{- define "llmgw.quotaTls" -}}
{{- if not (hasKey .Values "__llmgwQuotaTls") -}}
{{- $name := include "llmgw.quotaName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $days := int .Values.quota.tls.validityDays -}}
{{- $out := dict -}}
{{- $caPem := "" -}}
{{- if not .Values.quota.tls.certManager.enabled -}}
{{- $existing := lookup "v1" "Secret" $ns (include "llmgw.quotaTlsSecret" .) | default dict -}}
{{- $serving := dict "crt" (dig "data" "tls.crt" "" $existing) "key" (dig "data" "tls.key" "" $existing) "ca" (dig "data" "ca.crt" "" $existing) -}}
{{- if not (and $serving.crt $serving.key $serving.ca) -}}
{{- $ca := genCA (printf "%s-ca" $name) $days -}}
{{- $dns := list $name (printf "%s.%s" $name $ns) (printf "%s.%s.svc" $name $ns) (printf "%s.%s.svc.cluster.local" $name $ns) -}}
{{- $cert := genSignedCert (printf "%s.%s.svc" $name $ns) nil $dns $days $ca -}}
{{- $serving = dict "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) "ca" ($ca.Cert | b64enc) -}}
{{- end -}}
{{- $_ := set $out "serving" $serving -}}
{{- $caPem = b64dec $serving.ca -}}
{{- else if not .Values.quota.tls.certManager.issuerRef -}}
{{- $existing := lookup "v1" "Secret" $ns (include "llmgw.quotaCaSecret" .) | default dict -}}
{{- $ca := dict "crt" (dig "data" "tls.crt" "" $existing) "key" (dig "data" "tls.key" "" $existing) -}}
{{- if not (and $ca.crt $ca.key) -}}
{{- $gen := genCA (printf "%s-ca" $name) $days -}}
{{- $ca = dict "crt" ($gen.Cert | b64enc) "key" ($gen.Key | b64enc) -}}
{{- end -}}
{{- $_ := set $out "ca" $ca -}}
{{- $caPem = b64dec $ca.crt -}}
{{- else -}}
{{- $issued := lookup "v1" "Secret" $ns (include "llmgw.quotaTlsSecret" .) | default dict -}}
{{- with dig "data" "ca.crt" "" $issued }}{{ $caPem = b64dec . }}{{ end -}}
{{- end -}}
{{- with .Values.quota.tls.caBundle }}{{ $caPem = . }}{{ end -}}
{{- if not $caPem -}}
{{- fail "quota.tls: the sidecars need the CA of quota.tls.certManager.issuerRef to verify the quota service, and it is not known yet: set quota.tls.caBundle to its CA certificate (PEM, e.g. --set-file quota.tls.caBundle=ca.crt), or leave issuerRef empty so that cert-manager signs with a CA the chart generates" -}}
{{- end -}}
{{- $_ := set $out "caPem" $caPem -}}
{{- $_ := set .Values "__llmgwQuotaTls" (toJson $out) -}}
{{- end -}}
{{- get .Values "__llmgwQuotaTls" -}}
{{- end -}}

{{/* Values that only make sense together; each failure names the values to change. */}}
{{- define "llmgw.validate" -}}
{{- if include "llmgw.keysFromQuota" . -}}
{{- if not .Values.quota.enabled }}{{ fail "sidecar.providerKeys.mode=quota needs the quota service: set quota.enabled=true (or sidecar.providerKeys.mode=secret)" }}{{ end -}}
{{- if not .Values.quota.tls.enabled }}{{ fail "sidecar.providerKeys.mode=quota needs quota.tls.enabled=true: provider keys are handed to sidecars over TLS only" }}{{ end -}}
{{- if not .Values.quota.providerKeys.secretName }}{{ fail "sidecar.providerKeys.mode=quota needs quota.providerKeys.secretName: a Secret in the release namespace whose key quota.providerKeys.secretKey holds the provider keys file" }}{{ end -}}
{{- else if not .Values.sidecar.providerSecretName -}}
{{- $reading := list -}}
{{- range $id, $p := .Values.sidecar.providers }}{{ if hasPrefix (include "llmgw.providersDir" $) ($p.apiKeyFile | default "") }}{{ $reading = append $reading $id }}{{ end }}{{ end -}}
{{- if $reading }}{{ fail (printf "sidecar.providerSecretName is empty, but providers %s read their keys from %s: set sidecar.providerSecretName to a Secret present in every injected namespace, or sidecar.providerKeys.mode=quota" (join ", " $reading) (include "llmgw.providersDir" .)) }}{{ end -}}
{{- end -}}
{{- range $id, $p := .Values.sidecar.providers -}}
{{- if and (eq ($p.apiKeyFrom | default "") "quota") (not (include "llmgw.quotaTlsOn" $)) }}{{ fail (printf "sidecar.providers.%s.apiKeyFrom=quota needs quota.enabled=true and quota.tls.enabled=true: provider keys are handed to sidecars over TLS only" $id) }}{{ end -}}
{{- end -}}
{{- if and .Values.quota.enabled (eq .Values.quota.auth.mode "none") (or .Values.quota.admin.subjects .Values.quota.admin.viewerSubjects) -}}
{{- fail "quota.admin.subjects and quota.admin.viewerSubjects need quota.auth.mode kubernetes or jwks: with none, no token is verified" -}}
{{- end -}}
{{- if and .Values.quota.enabled (eq .Values.quota.auth.mode "jwks") (not (or .Values.quota.auth.jwks .Values.quota.auth.jwksJson)) -}}
{{- fail "quota.auth.mode=jwks needs quota.auth.jwks (a URL) or quota.auth.jwksJson (the JWKS document)" -}}
{{- end -}}
{{- if and .Values.quota.enabled (eq .Values.quota.auth.mode "jwks") (not .Values.quota.auth.issuer) -}}
{{- fail "quota.auth.mode=jwks needs quota.auth.issuer (the iss of the cluster's service-account tokens, e.g. https://kubernetes.default.svc.cluster.local): without it, tokens of any issuer whose keys the JWKS holds would pass" -}}
{{- end -}}
{{- if and .Values.quota.enabled (include "llmgw.quotaPostgres" .) -}}
{{- if not .Values.quota.postgres.existingSecret }}{{ fail "quota.store=postgres needs quota.postgres.existingSecret: an existing Secret in the release namespace whose key quota.postgres.key (default url) holds the connection string (postgres://user:password@host:5432/db); the chart bundles no database" }}{{ end -}}
{{- if lt (int .Values.quota.replicas) 2 }}{{ fail (printf "quota.store=postgres needs quota.replicas of 2 or more (got %v): the shared database is there so that one replica's loss stops nothing; for a single replica use quota.store=sqlite" .Values.quota.replicas) }}{{ end -}}
{{- end -}}
{{- include "llmgw.validateSidecar" . -}}
{{- end -}}

{{/*
The sidecar's rules across keys (checkCrossFieldRules in sidecar/config/schema.ts), applied to the values the
chart copies into its config.yaml, plus what only an injected sidecar cannot do (read a key file outside the
mounted Secret, expand a variable its container does not have): a config the sidecar would refuse at start
fails here, naming the value. Types, enums, ranges and unknown keys are values.schema.json's, generated from
the same schema (npm run chart:schema). test/integration/chart-schema.test.ts pins one case per rule.
*/}}
{{- define "llmgw.validateSidecar" -}}
{{- $providers := .Values.sidecar.providers | default dict -}}
{{- $models := .Values.sidecar.models | default dict -}}
{{- $known := keys $providers | sortAlpha | join ", " | default "none" -}}
{{- $keyFile := printf "^%s[-._a-zA-Z0-9]+$" (include "llmgw.providersDir" . | regexQuoteMeta) -}}
{{- if not (include "llmgw.keysFromQuota" .) -}}
{{- /* In quota mode the chart replaces every key setting with apiKeyFrom: quota, so these hold by construction. */ -}}
{{- range $id, $p := $providers -}}
{{- $set := list -}}
{{- range $k := list "apiKey" "apiKeyFile" "apiKeyFrom" }}{{ if hasKey $p $k }}{{ $set = append $set $k }}{{ end }}{{ end -}}
{{- if gt (len $set) 1 }}{{ fail (printf "sidecar.providers.%s: set one of apiKey, apiKeyFile and apiKeyFrom, not %s" $id (join " and " $set)) }}{{ end -}}
{{- if and (hasKey $p "apiKeyName") (not (hasKey $p "apiKeyFrom")) }}{{ fail (printf "sidecar.providers.%s.apiKeyName goes with apiKeyFrom: quota (or sidecar.providerKeys.mode=quota, which sets it)" $id) }}{{ end -}}
{{- if and $p.apiKeyFile (not (regexMatch $keyFile ($p.apiKeyFile | default ""))) -}}
{{- fail (printf "sidecar.providers.%s.apiKeyFile: %s is not a file an injected sidecar can read: it reads keys only from the Secret sidecar.providerSecretName, mounted at %s (e.g. %s%s for that Secret's key %s)" $id $p.apiKeyFile (include "llmgw.providersDir" $) (include "llmgw.providersDir" $) $id $id) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $name, $m := $models -}}
{{- $weighted := false -}}
{{- range $i, $t := $m.targets -}}
{{- if not (hasKey $providers $t.provider) }}{{ fail (printf "sidecar.models.%s.targets[%d].provider: unknown provider %q (known: %s)" $name $i $t.provider $known) }}{{ end -}}
{{- if or (not (hasKey $t "weight")) (gt (float64 $t.weight) 0.0) }}{{ $weighted = true }}{{ end -}}
{{- end -}}
{{- if not $weighted }}{{ fail (printf "sidecar.models.%s.targets: at least one target needs a weight above 0" $name) }}{{ end -}}
{{- range $i, $f := $m.contextFallbacks | default list -}}
{{- if not (hasKey $models $f) }}{{ fail (printf "sidecar.models.%s.contextFallbacks[%d]: unknown model %q" $name $i $f) }}{{ end -}}
{{- end -}}
{{- range $i, $f := $m.fallbacks | default list -}}
{{- if eq $f $name }}{{ fail (printf "sidecar.models.%s.fallbacks[%d]: a model cannot fall back to itself" $name $i) }}{{ end -}}
{{- if not (hasKey $models $f) }}{{ fail (printf "sidecar.models.%s.fallbacks[%d]: unknown model %q" $name $i $f) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- range $name, $_ := dig "models" dict (.Values.sidecar.rateLimits | default dict) -}}
{{- if not (hasKey $models $name) }}{{ fail (printf "sidecar.rateLimits.models.%s: unknown model %q" $name $name) }}{{ end -}}
{{- end -}}
{{- range $name, $c := dig "models" dict (.Values.sidecar.cache | default dict) -}}
{{- if not (hasKey $models $name) }}{{ fail (printf "sidecar.cache.models.%s: unknown model %q" $name $name) }}{{ end -}}
{{- with dig "semantic" "embeddingModel" "" $c -}}
{{- if not (hasKey $models .) }}{{ fail (printf "sidecar.cache.models.%s.semantic.embeddingModel: unknown model %q" $name .) }}{{ end -}}
{{- range $t := (get $models .).targets -}}
{{- if eq (dig $t.provider "type" "" $providers) "anthropic" }}{{ fail (printf "sidecar.cache.models.%s.semantic.embeddingModel: model %q has an Anthropic target, which has no embeddings API" $name (dig "semantic" "embeddingModel" "" $c)) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* ${VAR} in a value is expanded from the sidecar's environment, which the injector sets (injector-webhook/patch.ts) on top of the image's. */ -}}
{{- $env := list "POD_NAME" "POD_NAMESPACE" "POD_SERVICE_ACCOUNT" "LLMGW_TOKEN_FILE" "HOSTNAME" "HOME" "PATH" "NODE_ENV" "NODE_VERSION" "YARN_VERSION" -}}
{{- if .Values.quota.enabled }}{{ $env = append $env "LLMGW_QUOTA_ADDR" }}{{ end -}}
{{- $sections := dict -}}
{{- range $id, $p := $providers }}{{ $_ := set $sections (printf "sidecar.providers.%s" $id) $p }}{{ end -}}
{{- range $name, $m := $models }}{{ $_ := set $sections (printf "sidecar.models.%s" $name) $m }}{{ end -}}
{{- range $k := list "cache" "quota" "rateLimits" "logging" }}{{ $_ := set $sections (printf "sidecar.%s" $k) (get $.Values.sidecar $k) }}{{ end -}}
{{- range $path, $v := $sections -}}
{{- range $ref := regexFindAll "[$]+[{][A-Za-z_][A-Za-z0-9_]*[}]" (toJson $v) -1 -}}
{{- /* $${X} stands for a literal ${X}. */ -}}
{{- $var := $ref | trimPrefix "$" | trimPrefix "{" | trimSuffix "}" -}}
{{- if and (not (hasPrefix "$$" $ref)) (not (has $var $env)) -}}
{{- fail (printf "%s: ${%s} is not set in injected sidecars (their environment has only %s), so the sidecar would not start; provider keys go in apiKeyFile (from sidecar.providerSecretName) or come from the quota service (sidecar.providerKeys.mode=quota)" $path $var (join ", " $env)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The injector's config file. */}}
{{- define "llmgw.injectorConfig" -}}
{{- $native := dict "mode" .Values.injector.nativeSidecar.mode "minVersion" (toString .Values.injector.nativeSidecar.minVersion) "kubernetesVersion" (.Values.injector.nativeSidecar.kubernetesVersion | default .Capabilities.KubeVersion.Version) -}}
{{- $cfg := dict "image" (include "llmgw.image" .) "imagePullPolicy" .Values.image.pullPolicy "releaseNamespace" .Release.Namespace "excludedNamespaces" .Values.injector.excludedNamespaces "nativeSidecar" $native "configMapName" .Values.sidecar.configMapName "resources" (dict "cpuRequest" .Values.sidecar.resources.requests.cpu "memoryRequest" .Values.sidecar.resources.requests.memory "cpuLimit" .Values.sidecar.resources.limits.cpu "memoryLimit" .Values.sidecar.resources.limits.memory) "dataSizeLimit" .Values.sidecar.dataSizeLimit "tmpSizeLimit" .Values.sidecar.tmpSizeLimit "injectJobs" .Values.injector.injectJobs "preStopSeconds" .Values.sidecar.preStopSeconds "runAsUser" .Values.sidecar.runAsUser -}}
{{- /* failurePolicy Fail means "never without its sidecar": a pod whose sidecar could not start is refused; Ignore: it starts without. */ -}}
{{- $_ := set $cfg "onInvalidSidecarConfig" (eq .Values.injector.failurePolicy "Fail" | ternary "deny" "skip") -}}
{{- if .Values.quota.enabled }}{{ $_ := set $cfg "quotaAddress" (include "llmgw.quotaAddress" .) }}{{ $_ := set $cfg "tokenAudience" .Values.quota.auth.audience }}{{ end -}}
{{- /* Quota mode: no Secret is mounted into tenant pods. */ -}}
{{- if and .Values.sidecar.providerSecretName (not (include "llmgw.keysFromQuota" .)) }}{{ $_ := set $cfg "providerSecretName" .Values.sidecar.providerSecretName }}{{ end -}}
{{- toPrettyJson $cfg -}}
{{- end -}}
