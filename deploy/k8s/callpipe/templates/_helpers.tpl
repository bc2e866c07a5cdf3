{{- define "callpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "callpipe.fullname" -}}
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

{{/* Name of one service's objects. Call with (dict "ctx" $ "name" "gateway"). */}}
{{- define "callpipe.componentName" -}}
{{- printf "%s-%s" (include "callpipe.fullname" .ctx) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "callpipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "callpipe.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "callpipe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "callpipe.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: callpipe
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "callpipe.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "callpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "callpipe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding DATABASE_URL, and the only place the database values are validated:
every template that needs the URL goes through here. */}}
{{- define "callpipe.databaseSecretName" -}}
{{- $db := .Values.database }}
{{- if and $db.url $db.existingSecret }}
{{- fail "database: set either database.url or database.existingSecret, not both" }}
{{- else if $db.existingSecret }}
{{- $db.existingSecret }}
{{- else if $db.url }}
{{- printf "%s-database" (include "callpipe.fullname" .) }}
{{- else }}
{{- fail "database: no database configured. Set database.url (the chart creates a Secret from it) or database.existingSecret (the name of a Secret you manage whose key database.existingSecretKey, default DATABASE_URL, holds the postgresql:// URL)" }}
{{- end }}
{{- end }}

{{- define "callpipe.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{/* Non-secret environment of one service as a YAML map of strings: the shared settings, then
the service's `env`, then (gateway) the settings the chart derives from its values, which win so
the port and bind address always match the probes and the Service.
Call with (dict "ctx" $ "name" "gateway" "svc" .Values.gateway). */}}
{{- define "callpipe.serviceEnv" -}}
{{- $v := .ctx.Values }}
{{- $env := dict
    "ENVIRONMENT" $v.environment
    "LOG_LEVEL" $v.logLevel
    "LOG_FORMAT" $v.logFormat
    "KAFKA_BOOTSTRAP_SERVERS" (required "kafka.bootstrapServers is required (e.g. --set kafka.bootstrapServers=kafka:9092)" $v.kafka.bootstrapServers)
    "KAFKA_TOPIC_PREFIX" $v.kafka.topicPrefix
    "KAFKA_TOPIC_PARTITIONS" $v.kafka.topicPartitions
    "KAFKA_REPLICATION_FACTOR" $v.kafka.replicationFactor
    "KAFKA_TOPIC_RETENTION_HOURS" $v.kafka.topicRetentionHours
    "RETENTION_PURGE_INTERVAL_S" $v.dataProtection.purgeIntervalSeconds
    "KAFKA_SECURITY_PROTOCOL" (include "callpipe.kafkaProtocol" .ctx) }}
{{- if hasPrefix "SASL_" $v.kafka.securityProtocol }}
{{- $_ := set $env "KAFKA_SASL_MECHANISM" (required "kafka.sasl.mechanism is required with a SASL_* kafka.securityProtocol" $v.kafka.sasl.mechanism) }}
{{- $_ := set $env "KAFKA_SASL_USERNAME" (required "kafka.sasl.username is required with a SASL_* kafka.securityProtocol" $v.kafka.sasl.username) }}
{{- end }}
{{- if and (include "callpipe.kafkaTls" .ctx) $v.kafka.tls.existingSecret }}
{{- $_ := set $env "KAFKA_SSL_CAFILE" (printf "/etc/callpipe/kafka-tls/%s" $v.kafka.tls.caKey) }}
{{- if $v.kafka.tls.clientCertificate }}
{{- $_ := set $env "KAFKA_SSL_CERTFILE" (printf "/etc/callpipe/kafka-tls/%s" $v.kafka.tls.certKey) }}
{{- $_ := set $env "KAFKA_SSL_KEYFILE" (printf "/etc/callpipe/kafka-tls/%s" $v.kafka.tls.keyKey) }}
{{- end }}
{{- end }}
{{- if include "callpipe.kafkaTls" .ctx }}
{{- $_ := set $env "KAFKA_SSL_CHECK_HOSTNAME" (ternary "true" "false" $v.kafka.tls.checkHostname) }}
{{- end }}
{{- if or $v.tracing.enabled $v.tracing.otlpEndpoint }}
{{- $_ := set $env "TRACING_ENABLED" "true" }}
{{- $_ := set $env "OTEL_TRACES_SAMPLER" $v.tracing.sampler }}
{{- $_ := set $env "OTEL_TRACES_SAMPLER_ARG" $v.tracing.samplerArg }}
{{- with $v.tracing.otlpEndpoint }}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_ENDPOINT" . }}
{{- end }}
{{- with $v.tracing.resourceAttributes }}
{{- $_ := set $env "OTEL_RESOURCE_ATTRIBUTES" . }}
{{- end }}
{{- end }}
{{- range $key, $value := .svc.env }}
{{- $_ := set $env $key $value }}
{{- end }}
{{- if eq .name "gateway" }}
{{- $_ := set $env "GATEWAY_HOST" "0.0.0.0" }}
{{- $_ := set $env "GATEWAY_PORT" .svc.port }}
{{- $_ := set $env "GATEWAY_WORKERS" .svc.workers }}
{{- end }}
{{- /* As strings; toJson, not toString, because values.yaml numbers arrive as floats and
toString would print 5242880 as 5.24288e+06. */}}
{{- $out := dict }}
{{- range $key, $value := $env }}
{{- $_ := set $out $key (kindIs "string" $value | ternary $value (toJson $value)) }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* KAFKA_SECURITY_PROTOCOL, validated; and whether it uses TLS ("true" or empty). */}}
{{- define "callpipe.kafkaProtocol" -}}
{{- $p := .Values.kafka.securityProtocol }}
{{- if not (has $p (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) }}
{{- fail (printf "kafka.securityProtocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, not %q" $p) }}
{{- end }}
{{- $p }}
{{- end }}
{{- define "callpipe.kafkaTls" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end }}
{{- end }}

{{/* envFrom + env wiring shared by every container running a service. */}}
{{- define "callpipe.containerEnv" -}}
envFrom:
  - configMapRef:
      name: {{ include "callpipe.componentName" (dict "ctx" .ctx "name" .name) }}
  {{- with .svc.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
env:
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "callpipe.databaseSecretName" .ctx }}
        key: {{ include "callpipe.databaseSecretKey" .ctx }}
  {{- if hasPrefix "SASL_" .ctx.Values.kafka.securityProtocol }}
  - name: KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ required "kafka.sasl.existingSecret (the Secret holding the SASL password) is required with a SASL_* kafka.securityProtocol" .ctx.Values.kafka.sasl.existingSecret }}
        key: {{ .ctx.Values.kafka.sasl.passwordKey }}
  {{- end }}
  {{- $enc := .ctx.Values.secretsEncryption }}
  {{- if and (eq .name "notifier") (or $enc.existingSecret (eq .ctx.Values.environment "production")) }}
  - name: SECRETS_ENCRYPTION_KEYS
    valueFrom:
      secretKeyRef:
        name: {{ required "secretsEncryption.existingSecret (the Secret holding SECRETS_ENCRYPTION_KEYS, which encrypt callback signing secrets) is required in production" $enc.existingSecret }}
        key: {{ $enc.existingSecretKey }}
  {{- end }}
{{- end }}

{{/* The Kafka TLS Secret as files, for the containers that talk to Kafka. */}}
{{- define "callpipe.kafkaTlsVolumeMount" -}}
{{- if and (include "callpipe.kafkaTls" .) .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: /etc/callpipe/kafka-tls
  readOnly: true
{{- end }}
{{- end }}
{{- define "callpipe.kafkaTlsVolume" -}}
{{- if and (include "callpipe.kafkaTls" .) .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* Roll the pods when their configuration changes (a Secret you manage is yours to roll). */}}
{{- define "callpipe.configChecksums" -}}
checksum/config: {{ include "callpipe.serviceEnv" . | sha256sum }}
{{- if not .ctx.Values.database.existingSecret }}
checksum/database: {{ .ctx.Values.database.url | sha256sum }}
{{- end }}
{{- end }}

{{/* Writable /tmp on a read-only root filesystem (tempfile, multiprocessing, the fetcher's
download spool). Called with the root context, or with (dict "size" ...) for another size. */}}
{{- define "callpipe.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}
{{- define "callpipe.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ (and (kindIs "map" .) .size) | default "64Mi" }}
{{- end }}

{{/* Soft spread over nodes and zones, unless the service sets its own constraints. */}}
{{- define "callpipe.topologySpread" -}}
{{- $constraints := .svc.topologySpreadConstraints | default list }}
{{- if not $constraints }}
{{- $selector := include "callpipe.selectorLabels" (dict "ctx" .ctx "component" .name) | fromYaml }}
{{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
{{- $constraints = append $constraints (dict "maxSkew" 1 "topologyKey" . "whenUnsatisfiable" "ScheduleAnyway" "labelSelector" (dict "matchLabels" $selector)) }}
{{- end }}
{{- end }}
{{- toYaml $constraints }}
{{- end }}
