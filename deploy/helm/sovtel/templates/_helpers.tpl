{{/* Names and labels. */}}
{{- define "sovtel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sovtel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sovtel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sovtel.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sovtel.labels" -}}
{{ include "sovtel.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: sovtel
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sovtel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sovtel.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference; global.imageRegistry replaces the image's own registry (air-gapped mirrors). */}}
{{- define "sovtel.imageRef" -}}
{{- $registry := .global.imageRegistry | default .image.registry -}}
{{- $tag := .image.tag | default .appVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "sovtel.image" -}}
{{- include "sovtel.imageRef" (dict "global" .Values.global "image" .Values.image "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{- define "sovtel.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The environment variable that carries a tier's ClickHouse password. */}}
{{- define "sovtel.passwordEnv" -}}
{{- printf "SOVTEL_CLICKHOUSE_PASSWORD_%s" (. | upper | replace "-" "_") -}}
{{- end -}}

{{/* A tier's ClickHouse endpoint: the external host, or the bundled server when host is empty.
     Returns YAML: host, port, secure, verify. */}}
{{- define "sovtel.tierEndpoint" -}}
{{- $tier := index .root.Values.tiers .tier -}}
{{- if $tier.clickhouse.host -}}
host: {{ $tier.clickhouse.host }}
port: {{ $tier.clickhouse.port }}
secure: {{ $tier.clickhouse.secure }}
verify: {{ $tier.clickhouse.verify }}
{{- else if .root.Values.clickhouse.bundled.enabled -}}
host: {{ include "sovtel.fullname" .root }}-clickhouse
port: 8123
secure: false
verify: true
{{- else -}}
{{- fail (printf "tiers.%s.clickhouse.host is empty and clickhouse.bundled.enabled is false: give the tier's ClickHouse endpoint" .tier) -}}
{{- end -}}
{{- end -}}

{{/* Checks that every tier in a list exists and is enabled. */}}
{{- define "sovtel.checkTiers" -}}
{{- range .tiers -}}
{{- $t := index $.root.Values.tiers . -}}
{{- if not $t -}}{{- fail (printf "%s: unknown tier %q (local, sovereign, public)" $.where .) -}}{{- end -}}
{{- if not $t.enabled -}}{{- fail (printf "%s: tier %q is not enabled (tiers.%s.enabled)" $.where . .) -}}{{- end -}}
{{- end -}}
{{- end -}}

{{/* The sovtel.yaml of the collector (nvml=true) or the gateway (nvml=false). */}}
{{- define "sovtel.pipelineConfig" -}}
{{- $v := .root.Values -}}
{{- include "sovtel.checkTiers" (dict "root" .root "tiers" .tiers "where" .where) -}}
{{- $chartOtlp := dict "protocols" (dict "grpc" (dict "endpoint" (printf "0.0.0.0:%d" (int $v.ports.otlpGrpc))) "http" (dict "endpoint" (printf "0.0.0.0:%d" (int $v.ports.otlpHttp)))) -}}
{{- $receivers := dict -}}
{{- range $name, $cfg := $v.pipeline.receivers -}}
{{- $_ := set $receivers $name (deepCopy (default (dict) $cfg)) -}}
{{- end -}}
{{- if $v.pipeline.tls.existingSecret -}}
{{- $tls := dict "cert_file" "/etc/sovtel/tls/tls.crt" "key_file" "/etc/sovtel/tls/tls.key" -}}
{{- $_ := set $chartOtlp.protocols.grpc "tls" $tls -}}
{{- $_ := set $chartOtlp.protocols.http "tls" $tls -}}
{{- end -}}
{{- if $v.pipeline.bearerTokens -}}
{{- $tokens := list -}}
{{- range $i, $t := $v.pipeline.bearerTokens -}}
{{- $tokens = append $tokens (dict "token" (printf "env:SOVTEL_OTLP_TOKEN_%d" $i) "tenant" $t.tenant) -}}
{{- end -}}
{{- $_ := set $chartOtlp "auth" (dict "bearer_tokens" $tokens) -}}
{{- end -}}
{{- $_ := set $receivers "otlp" (mustMergeOverwrite (deepCopy (default (dict) $v.pipeline.receivers.otlp)) $chartOtlp) -}}
{{- if .nvml -}}
{{- $_ := set $receivers "nvml" (deepCopy $v.gpu.nvml.config) -}}
{{- end -}}
{{- $exporters := dict -}}
{{- range .tiers -}}
{{- $tier := index $v.tiers . -}}
{{- $exp := fromYaml (include "sovtel.tierEndpoint" (dict "root" $.root "tier" .)) -}}
{{- $_ := set $exp "username" $tier.clickhouse.username -}}
{{- $_ := set $exp "password" (printf "env:%s" (include "sovtel.passwordEnv" .)) -}}
{{- $_ := set $exp "database" $tier.database -}}
{{- $_ := set $exp "jurisdiction" $tier.jurisdiction -}}
{{- $_ := set $exp "tiers" $tier.permits -}}
{{- $_ := set $exp "migrate" $v.pipeline.exporter.migrate -}}
{{- $ret := dict "personal_days" (int $v.retention.personalDays) "operational_days" (int $v.retention.operationalDays) "aiact_years" (int $v.retention.aiactYears) -}}
{{- if $v.retention.overrideReason -}}{{- $_ := set $ret "override_reason" $v.retention.overrideReason -}}{{- end -}}
{{- $_ := set $exp "retention" $ret -}}
{{- $_ := set $exp "queue" (deepCopy $v.pipeline.exporter.queue) -}}
{{- $_ := set $exporters (printf "clickhouse/%s" .) $exp -}}
{{- end -}}
{{- $pipelines := dict -}}
{{- range $name, $p := $v.pipeline.pipelines -}}
{{- $recv := $p.receivers -}}
{{- if not $.nvml -}}{{- $recv = without $p.receivers "nvml" -}}{{- end -}}
{{- $exps := list -}}
{{- range $p.exporters -}}
{{- if hasKey $exporters . -}}{{- $exps = append $exps . -}}{{- end -}}
{{- end -}}
{{- if not $exps -}}{{- fail (printf "%s: pipeline %s writes to none of this component's tiers (%s)" $.where $name (join ", " $.tiers)) -}}{{- end -}}
{{- $carried := list -}}
{{- if $p.tiers -}}
{{- $carried = $p.tiers -}}
{{- else -}}
{{- range $exps -}}
{{- $carried = concat $carried (index $v.tiers (trimPrefix "clickhouse/" .)).permits -}}
{{- end -}}
{{- end -}}
{{- $_ := set $pipelines $name (dict "receivers" $recv "processors" (default (list) $p.processors) "exporters" $exps "tiers" (uniq $carried)) -}}
{{- end -}}
{{- $service := dict "data_dir" "/var/lib/sovtel" "country" (upper $v.residency.country) "sovereign_jurisdictions" $v.residency.sovereign "telemetry" (dict "metrics" (dict "address" (printf "0.0.0.0:%d" (int $v.ports.metrics)))) "pipelines" $pipelines -}}
{{- toYaml (dict "receivers" $receivers "processors" $v.pipeline.processors "exporters" $exporters "service" $service) -}}
{{- end -}}

{{/* Env vars every sovtel container gets: HOME, the node name, the PII key, OTLP tokens (receivers only)
     and the tier passwords, all secrets by secretKeyRef. */}}
{{- define "sovtel.secretEnv" -}}
# The root file system is read-only: libraries that cache under $HOME write to the /tmp emptyDir.
- name: HOME
  value: /tmp
- name: SOVTEL_NODE
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: SOVTEL_PII_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.secrets.piiKey.existingSecret }}
      key: {{ .root.Values.secrets.piiKey.key }}
{{- if .otlp }}
{{- range $i, $t := .root.Values.pipeline.bearerTokens }}
- name: SOVTEL_OTLP_TOKEN_{{ $i }}
  valueFrom:
    secretKeyRef:
      name: {{ $t.existingSecret }}
      key: {{ $t.key }}
{{- end }}
{{- end }}
{{- range .tiers }}
{{- $tier := index $.root.Values.tiers . }}
- name: {{ include "sovtel.passwordEnv" . }}
  valueFrom:
    secretKeyRef:
      name: {{ $tier.clickhouse.existingSecret }}
      key: {{ $tier.clickhouse.passwordKey }}
{{- end }}
{{- end -}}

{{/* Key ring (ConfigMap) and key Secrets as volumes, and their mounts. */}}
{{- define "sovtel.keyVolumes" -}}
- name: keyring
  configMap:
    name: {{ include "sovtel.fullname" .root }}-keyring
- name: node-keys
  secret:
    secretName: {{ .root.Values.secrets.nodeKeys.existingSecret }}
    defaultMode: 0400
- name: pepper
  secret:
    secretName: {{ .root.Values.secrets.pepper.existingSecret }}
    defaultMode: 0400
{{- end -}}

{{- define "sovtel.keyMounts" -}}
- name: keyring
  mountPath: /etc/sovtel/keyring
  readOnly: true
- name: node-keys
  mountPath: /etc/sovtel/keys/node
  readOnly: true
- name: pepper
  mountPath: /etc/sovtel/keys/pepper
  readOnly: true
{{- end -}}

{{/* Egress rules to the stores of a list of tiers (or the bundled ClickHouse pods). */}}
{{- define "sovtel.tierEgress" -}}
{{- $bundled := false -}}
{{- range .tiers }}
{{- $tier := index $.root.Values.tiers . }}
{{- if $tier.clickhouse.host }}
{{- range $tier.egress }}
- to:
    - ipBlock:
        cidr: {{ .cidr }}
  ports:
  {{- range .ports }}
    - protocol: TCP
      port: {{ . }}
  {{- end }}
{{- end }}
{{- else }}
{{- $bundled = true }}
{{- end }}
{{- end }}
{{- if $bundled }}
- to:
    - podSelector:
        matchLabels:
          {{- include "sovtel.selectorLabels" (dict "root" .root "component" "clickhouse") | nindent 10 }}
  ports:
    - protocol: TCP
      port: 8123
{{- end }}
{{- end -}}

{{- define "sovtel.dnsEgress" -}}
- to:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .Values.networkPolicy.dns.podSelector | nindent 8 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end -}}
