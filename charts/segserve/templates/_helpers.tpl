{{/* Chart name, truncated to 63 characters (DNS label limit). */}}
{{- define "segserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "segserve.fullname" -}}
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

{{- define "segserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "segserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "segserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every resource. The chart and app version labels change with each chart release, so they stay off the
     pod template (a changed template rolls every pod): see segserve.podLabels. */}}
{{- define "segserve.labels" -}}
helm.sh/chart: {{ include "segserve.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "segserve.stableLabels" . }}
{{- end -}}

{{/* Labels that do not change between chart releases. */}}
{{- define "segserve.stableLabels" -}}
{{ include "segserve.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: inference-server
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The pod template's labels: stable labels plus podLabels (never in a selector). */}}
{{- define "segserve.podLabels" -}}
{{ include "segserve.stableLabels" . }}
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "segserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "segserve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference from an image's values (registry, repository, tag, optional digest): by digest when given. */}}
{{- define "segserve.imageRef" -}}
{{- if .digest -}}
{{- printf "%s/%s@%s" .registry .repository .digest -}}
{{- else -}}
{{- printf "%s/%s:%s" .registry .repository .tag -}}
{{- end -}}
{{- end -}}

{{/* The Triton image. */}}
{{- define "segserve.image" -}}
{{- include "segserve.imageRef" .Values.image -}}
{{- end -}}

{{- define "segserve.testImage" -}}
{{- $tag := default (printf "%s-sdk" .Values.image.tag) .Values.tests.image.tag -}}
{{- include "segserve.imageRef" (merge (dict "tag" $tag) .Values.tests.image) -}}
{{- end -}}

{{/* NGC release (yy.mm) at the start of an image tag such as 26.07-py3 (empty when there is none). */}}
{{- define "segserve.ngcRelease" -}}
{{- regexFind "^[0-9]{2}\\.[0-9]{2}" . -}}
{{- end -}}

{{/* The Triton image's NGC release: image.release, else the yy.mm its tag starts with. */}}
{{- define "segserve.release" -}}
{{- default (include "segserve.ngcRelease" .Values.image.tag) .Values.image.release -}}
{{- end -}}

{{/* The row of releases.json (the chart's copy of export/data/releases.json) for NGC release .ngc, as JSON; "{}" if
     unknown. Called with (dict "root" $ "ngc" "yy.mm"), or (dict "root" $) for the table's default release. */}}
{{- define "segserve.releaseRow" -}}
{{- $table := .root.Files.Get "releases.json" | fromJson -}}
{{- $want := ternary .ngc $table.default (hasKey . "ngc") -}}
{{- $row := dict -}}
{{- range $table.releases -}}{{- if eq .ngc $want -}}{{- $row = . -}}{{- end -}}{{- end -}}
{{- toJson $row -}}
{{- end -}}

{{/* The row of the Triton image's release (segserve.release), as JSON. */}}
{{- define "segserve.imageReleaseRow" -}}
{{- include "segserve.releaseRow" (dict "root" . "ngc" (include "segserve.release" .)) -}}
{{- end -}}

{{/* Tag of an image reference (empty for a digest-only reference). */}}
{{- define "segserve.imageTag" -}}
{{- $ref := splitList "@" . | first -}}
{{- $last := splitList "/" $ref | last -}}
{{- if contains ":" $last -}}{{ splitList ":" $last | last }}{{- end -}}
{{- end -}}

{{/* Replicas the workload runs with: the HPA minimum when autoscaling, else replicaCount. */}}
{{- define "segserve.replicas" -}}
{{- if .Values.autoscaling.enabled -}}{{ .Values.autoscaling.minReplicas }}{{- else -}}{{ .Values.replicaCount }}{{- end -}}
{{- end -}}

{{/* Container memory (MiB): Triton's own plus /dev/shm, whose pages count against the container's limit. */}}
{{- define "segserve.memoryMi" -}}
{{- add .Values.resources.memoryMi .Values.shm.sizeMi -}}
{{- end -}}

{{/* Where Triton reads the repository from. */}}
{{- define "segserve.repositoryPath" -}}
{{- $src := .Values.modelRepository.source -}}
{{- if eq $src "s3" -}}{{ .Values.modelRepository.s3.url }}
{{- else if eq $src "gcs" -}}{{ .Values.modelRepository.gcs.url }}
{{- else -}}/models
{{- end -}}
{{- end -}}

{{/* Triton reads a local emptyDir at /models for sync and for engine builds (build-engine writes it). */}}
{{- define "segserve.repositoryIsCopy" -}}
{{- if or (eq .Values.modelRepository.source "sync") .Values.engineBuild.enabled -}}true{{- end -}}
{{- end -}}

{{- define "segserve.engineCacheEnabled" -}}
{{- if or .Values.engineCache.enabled .Values.engineBuild.enabled -}}true{{- end -}}
{{- end -}}

{{- define "segserve.adminSecretName" -}}
{{- default (printf "%s-admin-key" (include "segserve.fullname" .)) .Values.triton.adminKey.existingSecret -}}
{{- end -}}

{{/* The admin key of the restricted APIs, as env var SEGSERVE_ADMIN_KEY from its Secret (Triton and the helm test pod). */}}
{{- define "segserve.adminKeyEnv" -}}
- name: SEGSERVE_ADMIN_KEY
  valueFrom:
    secretKeyRef: {name: {{ include "segserve.adminSecretName" . }}, key: {{ .Values.triton.adminKey.secretKey }}}
{{- end -}}

{{/* Triton's restricted-API flag value: <apis>:<header>=<key> (Triton docs/customization_guide/inference_protocols.md,
     "Limit Endpoint Access"); the key reaches argv through Kubernetes' $(VAR) expansion of an env var from a Secret. */}}
{{- define "segserve.restrictedFlag" -}}
{{- printf "%s:%s=$(SEGSERVE_ADMIN_KEY)" (join "," .Values.triton.restrictedApis) .Values.triton.adminKey.header -}}
{{- end -}}

{{- define "segserve.strictReadiness" -}}
{{- $v := .Values.triton.strictReadiness -}}
{{- if eq (toString $v) "auto" -}}{{ eq .Values.triton.modelControlMode "none" }}{{- else -}}{{ $v }}{{- end -}}
{{- end -}}

{{/* Triton cannot read GPU metrics on MIG devices (triton-inference-server/server#5324, release notes' known issues). */}}
{{- define "segserve.gpuMetrics" -}}
{{- if and (eq .Values.mode "gpu") .Values.metrics.gpuMetrics (not (contains "/mig-" .Values.gpu.resourceName)) -}}true{{- end -}}
{{- end -}}

{{/* Ephemeral storage (MiB) of the Triton container: its own writes plus the emptyDir scratch volumes it fills. */}}
{{- define "segserve.ephemeralMi" -}}
{{- $mi := add .Values.resources.ephemeralStorageMi .Values.scratch.sizeMi -}}
{{- if has .Values.modelRepository.source (list "s3" "gcs") -}}{{- $mi = add $mi .Values.modelRepository.cloudCacheSizeMi -}}{{- end -}}
{{- $mi -}}
{{- end -}}

{{/* Does a chart-created claim with these access modes attach to one node only? */}}
{{- define "segserve.singleNodeModes" -}}
{{- if not (or (has "ReadOnlyMany" .) (has "ReadWriteMany" .)) -}}true{{- end -}}
{{- end -}}

{{- define "segserve.repositoryClaim" -}}
{{- default (printf "%s-models" (include "segserve.fullname" .)) .Values.modelRepository.pvc.existingClaim -}}
{{- end -}}

{{- define "segserve.engineCacheClaim" -}}
{{- default (printf "%s-engine-cache" (include "segserve.fullname" .)) .Values.engineCache.existingClaim -}}
{{- end -}}

{{/* A claim the chart creates: (dict "root" $ "name" <claim name> "claim" <values with accessModes, storageClass,
     size>). helm.sh/resource-policy: keep, so the claim (and the models or engines on it) outlives `helm uninstall`;
     delete it with kubectl when you mean to. */}}
{{- define "segserve.claim" -}}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ .name }}
  labels:
    {{- include "segserve.labels" .root | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
spec:
  accessModes:
    {{- toYaml .claim.accessModes | nindent 4 }}
  {{- with .claim.storageClass }}
  storageClassName: {{ . }}
  {{- end }}
  resources:
    requests:
      storage: {{ .claim.size }}
{{- end -}}

{{/* Cross-field rules the schema cannot express; each failure says what to change. */}}
{{- define "segserve.validateValues" -}}
{{- $v := .Values -}}
{{- $errors := list -}}
{{- $src := $v.modelRepository.source -}}
{{- if and (eq $src "s3") (not (hasPrefix "s3://" $v.modelRepository.s3.url)) -}}
{{- $errors = append $errors "modelRepository.source=s3 needs modelRepository.s3.url set to s3://bucket/path" -}}
{{- end -}}
{{- if and (eq $src "gcs") (not (hasPrefix "gs://" $v.modelRepository.gcs.url)) -}}
{{- $errors = append $errors "modelRepository.source=gcs needs modelRepository.gcs.url set to gs://bucket/path" -}}
{{- end -}}
{{- if and (eq $src "sync") (not $v.modelRepository.sync.command) -}}
{{- $errors = append $errors "modelRepository.source=sync needs modelRepository.sync.command, e.g. [aws, s3, sync, s3://bucket/models, /models]" -}}
{{- end -}}
{{- if and (eq $v.mode "gpu") (lt (int $v.gpu.count) 1) -}}
{{- $errors = append $errors "mode=gpu needs gpu.count >= 1 (use mode=cpu for a CPU-only deployment)" -}}
{{- end -}}
{{- if $v.engineBuild.enabled -}}
{{- $row := include "segserve.imageReleaseRow" . | fromJson -}}
{{- $default := include "segserve.releaseRow" (dict "root" .) | fromJson -}}
{{- $base := default $default.builder_base_image $row.builder_base_image -}}
{{- if not $v.engineBuild.image -}}
{{- $errors = append $errors (printf "engineBuild.enabled needs engineBuild.image: a builder image with segserve installed on %s (TensorRT of the Triton release; recipe in docker/, base from releases.json). There is no default: NGC's TensorRT image alone has no segserve" $base) -}}
{{- end -}}
{{- if eq $v.mode "cpu" -}}
{{- $errors = append $errors "engineBuild.enabled needs mode=gpu: TensorRT engines are built on the GPU they run on" -}}
{{- end -}}
{{- if and (ne $src "pvc") (ne $src "sync") -}}
{{- $errors = append $errors (printf "engineBuild.enabled needs modelRepository.source pvc or sync (Triton reads %s URLs itself; there is no local copy to build from)" $src) -}}
{{- end -}}
{{- if not $row.ngc -}}
{{- $errors = append $errors (printf "engineBuild.enabled needs the Triton image's NGC release in releases.json: image.tag %q does not start with a known yy.mm; set image.release to one of the table's releases" $v.image.tag) -}}
{{- end -}}
{{- $triton := include "segserve.release" . -}}
{{- $builder := include "segserve.ngcRelease" (include "segserve.imageTag" $v.engineBuild.image) -}}
{{- if and $builder (ne $triton $builder) (not $v.engineBuild.allowVersionMismatch) -}}
{{- $errors = append $errors (printf "engineBuild.image tag (NGC %s) must match the Triton release (NGC %s): an engine only loads in the TensorRT version that built it (or set engineBuild.allowVersionMismatch=true)" $builder (default "?" $triton)) -}}
{{- end -}}
{{- end -}}
{{- $replicas := int (include "segserve.replicas" .) -}}
{{- $several := or $v.autoscaling.enabled (gt $replicas 1) -}}
{{- if and $several (eq $src "pvc") (not $v.modelRepository.pvc.existingClaim) (include "segserve.singleNodeModes" $v.modelRepository.pvc.accessModes) -}}
{{- $errors = append $errors (printf "%s needs a repository claim every node can mount: the chart-created claim is ReadWriteOnce (Multi-Attach errors across nodes). Set modelRepository.pvc.accessModes to [ReadOnlyMany] or [ReadWriteMany], or modelRepository.pvc.existingClaim" (ternary "autoscaling.enabled" (printf "replicaCount=%d" $replicas) $v.autoscaling.enabled)) -}}
{{- end -}}
{{- if and $several (include "segserve.engineCacheEnabled" .) (not $v.engineCache.existingClaim) (include "segserve.singleNodeModes" $v.engineCache.accessModes) -}}
{{- $errors = append $errors "several replicas need an engine cache every node can mount: the chart-created cache claim is ReadWriteOnce. Set engineCache.accessModes to [ReadWriteMany] (ReadOnlyMany cannot be written), or engineCache.existingClaim" -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (or $v.metrics.serviceMonitor.enabled $v.autoscaling.enabled) (not $v.networkPolicy.metricsNamespaces) -}}
{{- $errors = append $errors (printf "networkPolicy.enabled with %s needs networkPolicy.metricsNamespaces (the Prometheus namespace): otherwise scrapes fail silently and the HPA shows <unknown>" (ternary "metrics.serviceMonitor.enabled" "autoscaling.enabled" $v.metrics.serviceMonitor.enabled)) -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (or $v.ingress.enabled $v.grpcRoute.enabled) (not $v.networkPolicy.allowedNamespaces) -}}
{{- $errors = append $errors "networkPolicy.enabled with ingress or grpcRoute needs networkPolicy.allowedNamespaces with the ingress controller's (or Gateway's) namespace: its proxies are not pods of this namespace" -}}
{{- end -}}
{{- if and $v.autoscaling.enabled (not $v.autoscaling.metricName) (not $v.autoscaling.metrics) -}}
{{- $errors = append $errors "autoscaling.enabled needs autoscaling.metricName or autoscaling.metrics: an HPA without metrics never scales" -}}
{{- end -}}
{{- $ru := $v.updateStrategy.rollingUpdate | default dict -}}
{{- if and (eq $v.updateStrategy.type "RollingUpdate") (eq (toString (dig "maxSurge" 1 $ru)) "0") (eq (toString (dig "maxUnavailable" 1 $ru)) "0") -}}
{{- $errors = append $errors "updateStrategy.rollingUpdate: maxSurge and maxUnavailable cannot both be 0 (Kubernetes rejects it; the rollout could never progress)" -}}
{{- end -}}
{{- if has "health" $v.triton.restrictedApis -}}
{{- $errors = append $errors "triton.restrictedApis must not contain health: the kubelet's probes cannot send the admin key" -}}
{{- end -}}
{{- if eq (int $v.service.httpPort) (int $v.service.grpcPort) -}}
{{- $errors = append $errors (printf "service.httpPort and service.grpcPort are both %d: give them different ports" (int $v.service.httpPort)) -}}
{{- end -}}
{{- if $v.ingress.enabled -}}
{{- if not $v.ingress.host -}}
{{- $errors = append $errors "ingress.enabled needs ingress.host: the host name gRPC clients dial" -}}
{{- end -}}
{{- if not $v.ingress.tlsSecret -}}
{{- $errors = append $errors "ingress.enabled needs ingress.tlsSecret: ingress-nginx serves HTTP/2, hence gRPC, only over TLS" -}}
{{- end -}}
{{- end -}}
{{- if and $v.grpcRoute.enabled (not $v.grpcRoute.parentRefs) -}}
{{- $errors = append $errors "grpcRoute.enabled needs grpcRoute.parentRefs: the Gateway(s) the route attaches to" -}}
{{- end -}}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) -}}
{{- $errors = append $errors (printf "autoscaling.minReplicas (%d) must not exceed autoscaling.maxReplicas (%d)" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.allowedNamespaces) (not $v.networkPolicy.allowedPodLabels) -}}
{{- $errors = append $errors "networkPolicy.enabled needs networkPolicy.allowedNamespaces or networkPolicy.allowedPodLabels (else nothing could reach the server)" -}}
{{- end -}}
{{- if $errors -}}
{{- fail (printf "\n\nVALUES VALIDATION:\n  - %s\n" (join "\n  - " $errors)) -}}
{{- end -}}
{{- end -}}

{{/* Every container: the Kubernetes "restricted" Pod Security Standard. */}}
{{- define "segserve.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* A probe from its values (dict "root" $ "probe" .Values.probes.<name> "path" <health endpoint>): the probe's own
     handler if it has one (liveness), else HTTP GET on Triton's health endpoint, or, when HTTP is off
     (triton.allowHttp=false), the gRPC health checking protocol Triton's gRPC server implements (Kubernetes gRPC
     probes, GA in 1.27); then its timings. */}}
{{- define "segserve.probe" -}}
{{- if .probe.handler -}}
{{ toYaml .probe.handler }}
{{- else if .root.Values.triton.allowHttp -}}
httpGet: {path: {{ .path }}, port: http}
{{- else -}}
grpc: {port: 8001}
{{- end }}
periodSeconds: {{ .probe.periodSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- with .probe.successThreshold }}
successThreshold: {{ . }}
{{- end }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
{{- end -}}
