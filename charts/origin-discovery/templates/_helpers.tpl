{{/*
Chart name, overridable with nameOverride. Truncated to 63 characters (DNS label limit).
*/}}
{{- define "origin-discovery.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: fullnameOverride, else "<release>-<chart>", or just
"<release>" when the release name already contains the chart name. At most 63 characters.
*/}}
{{- define "origin-discovery.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "origin-discovery.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "origin-discovery.labels" -}}
helm.sh/chart: {{ include "origin-discovery.chart" . }}
{{ include "origin-discovery.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: origin-discovery
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable across upgrades (a Deployment's selector is immutable).
*/}}
{{- define "origin-discovery.selectorLabels" -}}
app.kubernetes.io/name: {{ include "origin-discovery.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount the pods run as.
*/}}
{{- define "origin-discovery.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "origin-discovery.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container image reference: repository plus digest, or tag (default: appVersion).
*/}}
{{- define "origin-discovery.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
An IntOrString value: numbers as integers (values arrive as float64, which would print as
1e+06), strings such as "50%" quoted.
*/}}
{{- define "origin-discovery.intOrPercent" -}}
{{- if kindIs "string" . }}{{ quote . }}{{ else }}{{ int64 . }}{{ end }}
{{- end }}

{{/*
Milliseconds of a simple duration ("250ms", "10s", "2m"), or "" for any other humantime
form (compound durations are valid for the controller but not checked by the chart).
*/}}
{{- define "origin-discovery.durationMillis" -}}
{{- if regexMatch "^[0-9]+ms$" . }}
{{- trimSuffix "ms" . }}
{{- else if regexMatch "^[0-9]+s$" . }}
{{- mul (trimSuffix "s" . | int64) 1000 }}
{{- else if regexMatch "^[0-9]+m$" . }}
{{- mul (trimSuffix "m" . | int64) 60000 }}
{{- end }}
{{- end }}

{{/*
The controller's command line (`run` plus one `--flag=value` per setting) as a YAML list.
Flags with a default are always passed explicitly so `kubectl describe pod` shows the
effective configuration; toYaml quotes whatever needs quoting (`*`, spaces, colons).
*/}}
{{- define "origin-discovery.args" -}}
{{- $v := .Values }}
{{- $args := list "run" (printf "--listen=0.0.0.0:%d" ($v.ports.http | int)) (printf "--admin-listen=0.0.0.0:%d" ($v.ports.admin | int)) }}
{{- with $v.watchNamespace }}
{{- $args = append $args (printf "--namespace=%s" .) }}
{{- end }}
{{- range $v.services }}
{{- $args = append $args (printf "--service=%s" .) }}
{{- end }}
{{- with $v.podSelector }}
{{- $args = append $args (printf "--pod-selector=%s" .) }}
{{- end }}
{{- $args = append $args (printf "--stale-after=%s" $v.staleAfter) }}
{{- $args = append $args (printf "--heartbeat-interval=%s" $v.heartbeatInterval) }}
{{- if $v.nodeSignals.enabled }}
{{- $args = append $args "--node-signals" }}
{{- $args = append $args (printf "--node-lease-grace=%s" $v.nodeSignals.leaseGrace) }}
{{- end }}
{{- $args = append $args (printf "--probe-default=%s" $v.probes.default) }}
{{- $args = append $args (printf "--probe-interval=%s" $v.probes.interval) }}
{{- $args = append $args (printf "--probe-timeout=%s" $v.probes.timeout) }}
{{- $args = append $args (printf "--probe-failures=%d" ($v.probes.failures | int64)) }}
{{- $args = append $args (printf "--probe-successes=%d" ($v.probes.successes | int64)) }}
{{- $args = append $args (printf "--probe-panic-threshold=%d" ($v.probes.panicThreshold | int64)) }}
{{- $args = append $args (printf "--max-subscribers=%d" ($v.maxSubscribers | int64)) }}
{{- $args = append $args (printf "--max-subscribers-per-ip=%d" ($v.maxSubscribersPerIp | int64)) }}
{{- with $v.trustedProxies }}
{{- $args = append $args (printf "--trusted-proxies=%s" (join "," .)) }}
{{- end }}
{{- $args = append $args (printf "--forwarded-header=%s" $v.forwardedHeader) }}
{{- $args = append $args (printf "--max-connections=%d" ($v.maxConnections | int64)) }}
{{- $args = append $args (printf "--header-read-timeout=%s" $v.headerReadTimeout) }}
{{- /* A size like 64KiB as it is; a plain number (a float64 once Helm has read it) as an integer. */}}
{{- $maxHeaderBytes := $v.maxHeaderBytes }}
{{- if not (kindIs "string" $maxHeaderBytes) }}
{{- $maxHeaderBytes = $maxHeaderBytes | int64 }}
{{- end }}
{{- $args = append $args (printf "--max-header-bytes=%v" $maxHeaderBytes) }}
{{- $args = append $args (printf "--write-timeout=%s" $v.writeTimeout) }}
{{- $args = append $args (printf "--delta-log=%d" ($v.deltaLog | int64)) }}
{{- range $v.corsAllowOrigins }}
{{- $args = append $args (printf "--cors-allow-origin=%s" .) }}
{{- end }}
{{- $args = append $args (printf "--shutdown-timeout=%s" $v.shutdownTimeout) }}
{{- $args = append $args (printf "--log-level=%s" $v.logLevel) }}
{{- $args = append $args (printf "--log-format=%s" $v.logFormat) }}
{{- range $v.extraArgs }}
{{- $args = append $args . }}
{{- end }}
{{- toYaml $args }}
{{- end }}
