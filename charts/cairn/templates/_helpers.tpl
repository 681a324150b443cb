{{/* Names and labels ---------------------------------------------------- */}}

{{- define "cairn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cairn.fullname" -}}
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

{{/* A child resource name: the full name, a suffix, at most 52 characters so
that a CronJob's Jobs (11 more) and their pods still fit in 63. */}}
{{- define "cairn.childName" -}}
{{- $root := index . 0 }}{{ $suffix := index . 1 }}
{{- $full := include "cairn.fullname" $root }}
{{- $name := printf "%s-%s" $full $suffix }}
{{- if gt (len $name) 52 }}
{{- $name = printf "%s-%s" ($name | trunc 43 | trimSuffix "-") ($name | sha256sum | trunc 8) }}
{{- end }}
{{- $name }}
{{- end }}

{{- define "cairn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cairn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cairn.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cairn.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cairn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cairn.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cairn.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Secrets ---------------------------------------------------------------- */}}

{{/* The Secret the pods read their environment from. */}}
{{- define "cairn.secretName" -}}
{{- if .Values.repository.existingSecret }}
{{- .Values.repository.existingSecret }}
{{- else }}
{{- include "cairn.fullname" . }}
{{- end }}
{{- end }}

{{/* Fail early, with a message that says what to set, rather than install
jobs that can never open the repository. */}}
{{- define "cairn.validate" -}}
{{- $r := .Values.repository }}
{{- if and (not $r.existingSecret) (not .Values.externalSecret.enabled) }}
{{- if not $r.password }}
{{- fail "repository.password is required: set it (development), or set repository.existingSecret to a Secret holding RESTIC_PASSWORD (production), or enable externalSecret" }}
{{- end }}
{{- if not $r.url }}
{{- fail "repository.url is required: set it to the repository location (for example s3:https://s3.amazonaws.com/bucket/cairn), or provide RESTIC_REPOSITORY in repository.existingSecret" }}
{{- end }}
{{- end }}
{{- if and $r.existingSecret (or $r.password $r.credentials) }}
{{- fail "repository.password and repository.credentials are ignored with repository.existingSecret: put them into that Secret instead" }}
{{- end }}
{{- if and .Values.externalSecret.enabled $r.existingSecret }}
{{- fail "externalSecret.enabled and repository.existingSecret exclude each other: the ExternalSecret creates the Secret" }}
{{- end }}
{{- if and .Values.externalSecret.enabled (not .Values.externalSecret.secretStoreRef.name) }}
{{- fail "externalSecret.secretStoreRef.name is required when externalSecret.enabled" }}
{{- end }}
{{- if and .Values.restore.enabled (not .Values.restore.targetClaim) }}
{{- fail "restore.targetClaim is required when restore.enabled: name the PVC to restore into" }}
{{- end }}
{{- $names := dict }}
{{- range (concat .Values.backup.pvcs .Values.backup.sftp) }}
{{- if hasKey $names .name }}
{{- fail (printf "backup source name %q is used twice: names must be unique across backup.pvcs and backup.sftp" .name) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- if and $.Values.jobMode.enabled (has .name (list "check" "forget" "prune")) }}
{{- fail (printf "backup source name %q is reserved with jobMode.enabled: the job ConfigMap's %s.yaml holds the %s run" .name .name .name) }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.pushgatewayUrl (not .Values.jobMode.enabled) }}
{{- fail "metrics.pushgatewayUrl needs jobMode.enabled: true: only cairn's job mode (cairn run) pushes metrics; without it the CronJobs run plain restic-like commands and nothing would reach the Pushgateway" }}
{{- end }}
{{- if and .Values.forget.enabled .Values.forget.prune .Values.prune.enabled }}
{{- fail "forget.prune and prune.enabled both prune: choose one (prune after every forget, or on prune.schedule)" }}
{{- end }}
{{- end }}

{{/* Retention and prune --------------------------------------------------- */}}

{{/* The flags of `cairn forget` from forget.*: the keep policy, --group-by,
--retry-lock and extraArgs, as a JSON list (read it with fromJsonArray), so
the plain CronJob and the job-mode config pass exactly the same. */}}
{{- define "cairn.forgetFlags" -}}
{{- $f := .Values.forget }}
{{- $args := list }}
{{- range $k, $n := $f.keep }}
{{- $args = concat $args (list (printf "--%s" $k) ($n | toString)) }}
{{- end }}
{{- with $f.groupBy }}{{ $args = concat $args (list "--group-by" .) }}{{ end }}
{{- with $f.retryLock }}{{ $args = concat $args (list "--retry-lock" .) }}{{ end }}
{{- $args = concat $args $f.extraArgs }}
{{- toJson $args }}
{{- end }}

{{/* The prune limits from prune.* that `cairn prune` and `cairn forget
--prune` both take (--max-unused, --max-repack-size, --repack-uncompressed),
as a JSON list. */}}
{{- define "cairn.pruneLimits" -}}
{{- $p := .Values.prune }}
{{- $args := list }}
{{- with $p.maxUnused }}{{ $args = concat $args (list "--max-unused" (. | toString)) }}{{ end }}
{{- with $p.maxRepackSize }}{{ $args = concat $args (list "--max-repack-size" (. | toString)) }}{{ end }}
{{- if $p.repackUncompressed }}{{ $args = append $args "--repack-uncompressed" }}{{ end }}
{{- toJson $args }}
{{- end }}

{{/* The flags of a `cairn prune` run: the limits, --retry-lock (the
retryLock given: forget's for the prune after forget, prune's for the prune
CronJob) and prune.extraArgs. Arguments: root, retryLock. */}}
{{- define "cairn.pruneFlags" -}}
{{- $args := include "cairn.pruneLimits" .root | fromJsonArray }}
{{- with .retryLock }}{{ $args = concat $args (list "--retry-lock" .) }}{{ end }}
{{- $args = concat $args .root.Values.prune.extraArgs }}
{{- toJson $args }}
{{- end }}

{{/* Pods ------------------------------------------------------------------- */}}

{{- define "cairn.podLabels" -}}
{{ include "cairn.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- if .root.Values.cloudIdentity.azureClientId }}
azure.workload.identity/use: "true"
{{- end }}
{{- with .root.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cairn.resources" -}}
{{- $presets := dict
  "small" (dict "requests" (dict "cpu" "100m" "memory" "256Mi") "limits" (dict "memory" "1Gi"))
  "medium" (dict "requests" (dict "cpu" "500m" "memory" "512Mi") "limits" (dict "memory" "2Gi"))
  "large" (dict "requests" (dict "cpu" "1" "memory" "1Gi") "limits" (dict "memory" "4Gi")) }}
{{- if eq .Values.resourcesPreset "none" }}
{{- toYaml .Values.resources }}
{{- else }}
{{- toYaml (get $presets .Values.resourcesPreset) }}
{{- end }}
{{- end }}

{{/* The ssh_config a pod gets, as a key of the ssh ConfigMap: its SFTP
source's (which names the repository's host too), else the repository's;
empty when the pod needs no SSH. One file per source, so two sources on the
same host with different keys never see each other's blocks. */}}
{{- define "cairn.sshConfigKey" -}}
{{- with .sshSources }}{{ printf "source-%s" (first .).name }}
{{- else }}{{ if .root.Values.repository.ssh.secretName }}repository{{ end }}
{{- end }}
{{- end }}

{{/* The host name in an SFTP location: sftp://[user@]host[:port]/path or
restic's sftp:[user@]host:/path. */}}
{{- define "cairn.sftpHost" -}}
{{- if hasPrefix "sftp://" . }}
{{- (urlParse .).hostname }}
{{- else }}
{{- regexReplaceAll "^sftp:(?:[^@/]*@)?([^:/]+):.*$" . "${1}" }}
{{- end }}
{{- end }}

{{/* One ssh_config block that pins a host's key and known_hosts files. */}}
{{- define "cairn.sshBlock" -}}
Host {{ .host }}
  IdentityFile {{ .dir }}/identity
  IdentitiesOnly yes
  UserKnownHostsFile {{ .dir }}/known_hosts
{{ end }}

{{/*
cairn.pod renders a Job's pod template spec. Arguments (a dict):
  root       the chart context
  component  app.kubernetes.io/component of the pod
  args       cairn's arguments (a list; global options are appended here)
  mounts     extra volumeMounts (list), volumes: extra volumes (list)
  sshSources SFTP sources whose SSH Secret this pod mounts (list)
  nodeSelector, affinity: overrides of the chart-wide placement
  restartPolicy (default Never)
*/}}
{{- define "cairn.pod" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $args := .args }}
{{- range $k, $val := $v.repository.options }}
{{- $args = concat $args (list "-o" (printf "%s=%v" $k $val)) }}
{{- end }}
{{- $tokenNeeded := false }}
{{- if or $v.serviceAccount.automountToken (and $v.rbac.create $v.rbac.rules) }}{{ $tokenNeeded = true }}{{ end }}
{{- $sshKey := include "cairn.sshConfigKey" . }}
metadata:
  labels:
    {{- include "cairn.podLabels" (dict "root" $root "component" .component) | nindent 4 }}
  {{- with $v.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  restartPolicy: {{ .restartPolicy | default "Never" }}
  serviceAccountName: {{ include "cairn.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $tokenNeeded }}
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $v.jobDefaults.terminationGracePeriodSeconds }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- if $v.podSecurity.readAsRoot }}
    runAsUser: 0
    runAsGroup: 0
    runAsNonRoot: false
    {{- else }}
    runAsNonRoot: true
    runAsUser: {{ $v.podSecurity.runAsUser }}
    runAsGroup: {{ $v.podSecurity.runAsGroup }}
    fsGroup: {{ $v.podSecurity.fsGroup }}
    {{- end }}
    seccompProfile:
      type: RuntimeDefault
  {{- with (.nodeSelector | default $v.nodeSelector) }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with (.affinity | default $v.affinity) }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: cairn
      image: {{ include "cairn.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args:
        {{- toYaml $args | nindent 8 }}
      env:
        {{- if $v.repository.url }}
        - name: RESTIC_REPOSITORY
          value: {{ $v.repository.url | quote }}
        {{- end }}
        - name: RESTIC_CACHE_DIR
          value: /cache
        - name: TMPDIR
          value: /tmp
        # HOME holds .ssh/config; an emptyDir, since the root filesystem is read-only.
        - name: HOME
          value: /home/cairn
        {{- if $v.repository.caSecret.name }}
        - name: RESTIC_CACERT
          value: /etc/cairn/tls/ca.crt
        {{- end }}
        {{- if $v.metrics.pushgatewayUrl }}
        - name: CAIRN_PUSHGATEWAY_URL
          value: {{ $v.metrics.pushgatewayUrl | quote }}
        {{- end }}
        {{- if $v.logFormat }}
        - name: CAIRN_LOG_FORMAT
          value: {{ $v.logFormat | quote }}
        {{- end }}
        {{- range $k, $val := $v.repository.env }}
        - name: {{ $k }}
          value: {{ $val | toString | quote }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      envFrom:
        - secretRef:
            name: {{ include "cairn.secretName" $root }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        {{- if $v.podSecurity.readAsRoot }}
        runAsNonRoot: false
        capabilities:
          drop: [ALL]
          add: [DAC_READ_SEARCH]
        {{- else }}
        runAsNonRoot: true
        capabilities:
          drop: [ALL]
        {{- end }}
        seccompProfile:
          type: RuntimeDefault
      resources:
        {{- include "cairn.resources" $root | nindent 8 }}
      volumeMounts:
        - name: cache
          mountPath: /cache
        - name: tmp
          mountPath: /tmp
        - name: home
          mountPath: /home/cairn
        {{- if $sshKey }}
        - name: ssh-config
          mountPath: /home/cairn/.ssh
          readOnly: true
        {{- end }}
        {{- if $v.repository.ssh.secretName }}
        - name: ssh-repository
          mountPath: /etc/cairn/ssh/repository
          readOnly: true
        {{- end }}
        {{- range .sshSources }}
        - name: ssh-{{ .name }}
          mountPath: /etc/cairn/ssh/{{ .name }}
          readOnly: true
        {{- end }}
        {{- if $v.repository.caSecret.name }}
        - name: ca
          mountPath: /etc/cairn/tls
          readOnly: true
        {{- end }}
        {{- with .mounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: cache
      emptyDir:
        sizeLimit: {{ $v.cacheSizeLimit }}
    - name: tmp
      emptyDir:
        sizeLimit: {{ $v.tmpSizeLimit }}
    - name: home
      emptyDir:
        sizeLimit: 16Mi
    {{- if $sshKey }}
    - name: ssh-config
      configMap:
        name: {{ include "cairn.childName" (list $root "ssh") }}
        items:
          - key: {{ $sshKey }}
            path: config
    {{- end }}
    {{- if $v.repository.ssh.secretName }}
    - name: ssh-repository
      secret:
        secretName: {{ $v.repository.ssh.secretName }}
        # 0400: the private key is readable by its owner only (the pod's fsGroup
        # lets the non-root user read it).
        defaultMode: 0400
        items:
          - key: {{ $v.repository.ssh.identityKey }}
            path: identity
          - key: {{ $v.repository.ssh.knownHostsKey }}
            path: known_hosts
    {{- end }}
    {{- range .sshSources }}
    - name: ssh-{{ .name }}
      secret:
        secretName: {{ .sshSecret }}
        defaultMode: 0400
        items:
          - key: {{ .identityKey | default "id_ed25519" }}
            path: identity
          - key: {{ .knownHostsKey | default "known_hosts" }}
            path: known_hosts
    {{- end }}
    {{- if $v.repository.caSecret.name }}
    - name: ca
      secret:
        secretName: {{ $v.repository.caSecret.name }}
        defaultMode: 0444
        items:
          - key: {{ $v.repository.caSecret.key }}
            path: ca.crt
    {{- end }}
    {{- with .volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The CronJob wrapper around cairn.pod. Arguments: root, name, component,
schedule, suspend, and the cairn.pod arguments. */}}
{{- define "cairn.cronjob" -}}
{{- $root := .root }}
{{- $d := $root.Values.jobDefaults }}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "cairn.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with .source }}
    cairn.dev/source: {{ . }}
    {{- end }}
spec:
  schedule: {{ .schedule | quote }}
  {{- with $d.timeZone }}
  timeZone: {{ . | quote }}
  {{- end }}
  suspend: {{ .suspend }}
  concurrencyPolicy: {{ $d.concurrencyPolicy }}
  startingDeadlineSeconds: {{ $d.startingDeadlineSeconds }}
  successfulJobsHistoryLimit: {{ $d.successfulJobsHistoryLimit }}
  failedJobsHistoryLimit: {{ $d.failedJobsHistoryLimit }}
  jobTemplate:
    metadata:
      labels:
        {{- include "cairn.selectorLabels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
    spec:
      backoffLimit: {{ $d.backoffLimit }}
      activeDeadlineSeconds: {{ $d.activeDeadlineSeconds }}
      {{- if not (kindIs "invalid" $d.ttlSecondsAfterFinished) }}
      ttlSecondsAfterFinished: {{ $d.ttlSecondsAfterFinished }}
      {{- end }}
      template:
        {{- include "cairn.pod" . | nindent 8 }}
{{- end }}

{{/* "true" when an IPv4 CIDR contains the metadata server 169.254.169.254,
so that NetworkPolicy can list it under ipBlock.except (the API server
rejects an except outside its CIDR). IPv6 CIDRs never contain it. */}}
{{- define "cairn.cidrHasMetadata" -}}
{{- if regexMatch "^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+/[0-9]+$" . }}
{{- $parts := splitList "/" . }}
{{- $o := splitList "." (first $parts) }}
{{- $ip := add (mul (atoi (index $o 0)) 16777216) (mul (atoi (index $o 1)) 65536) (mul (atoi (index $o 2)) 256) (atoi (index $o 3)) }}
{{- $meta := add (mul 169 16777216) (mul 254 65536) (mul 169 256) 254 }}
{{- $block := 1 }}
{{- range until (sub 32 (atoi (last $parts)) | int) }}{{ $block = mul $block 2 }}{{ end }}
{{- if eq (div $ip $block) (div $meta $block) }}true{{ end }}
{{- end }}
{{- end }}

{{/* An egress rule to CIDRs on TCP ports, with the metadata server cut out. */}}
{{- define "cairn.egressRule" -}}
- to:
  {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
        {{- if and (not $.allowMetadata) (include "cairn.cidrHasMetadata" .) }}
        except:
          - 169.254.169.254/32
        {{- end }}
  {{- end }}
  ports:
  {{- range .ports }}
    - protocol: TCP
      port: {{ . }}
  {{- end }}
{{- end }}
