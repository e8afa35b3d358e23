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

{{- define "segserve.labels" -}}
helm.sh/chart: {{ include "segserve.chart" . }}
{{ include "segserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: inference-server
{{- with .Values.commonLabels }}
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

{{- define "segserve.image" -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository .Values.image.tag -}}
{{- end -}}

{{/* The engine builder's tag: its TensorRT must equal the one inside the Triton image (same NGC yy.mm). */}}
{{- define "segserve.engineBuildTag" -}}
{{- default .Values.image.tag .Values.engineBuild.image.tag -}}
{{- end -}}

{{- define "segserve.engineBuildImage" -}}
{{- printf "%s/%s:%s" .Values.engineBuild.image.registry .Values.engineBuild.image.repository (include "segserve.engineBuildTag" .) -}}
{{- end -}}

{{- define "segserve.testImage" -}}
{{- $tag := default (printf "%s-sdk" .Values.image.tag) .Values.tests.image.tag -}}
{{- printf "%s/%s:%s" .Values.tests.image.registry .Values.tests.image.repository $tag -}}
{{- end -}}

{{/* NGC release (yy.mm) of an image tag such as 24.10-py3. */}}
{{- define "segserve.ngcRelease" -}}
{{- regexFind "^[0-9]{2}\\.[0-9]{2}" . -}}
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

{{/* A local, writable copy of the repository is needed for sync and for engine builds. */}}
{{- define "segserve.repositoryIsCopy" -}}
{{- if or (eq .Values.modelRepository.source "sync") .Values.engineBuild.enabled -}}true{{- end -}}
{{- end -}}

{{- define "segserve.repositoryClaim" -}}
{{- default (printf "%s-models" (include "segserve.fullname" .)) .Values.modelRepository.pvc.existingClaim -}}
{{- end -}}

{{- define "segserve.engineCacheClaim" -}}
{{- default (printf "%s-engine-cache" (include "segserve.fullname" .)) .Values.engineBuild.cache.existingClaim -}}
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
{{- if eq $v.mode "cpu" -}}
{{- $errors = append $errors "engineBuild.enabled needs mode=gpu: TensorRT engines are built on the GPU they run on" -}}
{{- end -}}
{{- if not $v.engineBuild.models -}}
{{- $errors = append $errors "engineBuild.enabled needs engineBuild.models: the model folders whose 1/model.onnx to build" -}}
{{- end -}}
{{- if and (ne $src "pvc") (ne $src "sync") -}}
{{- $errors = append $errors (printf "engineBuild.enabled needs modelRepository.source pvc or sync (Triton reads %s URLs itself; there is no local copy to build into)" $src) -}}
{{- end -}}
{{- $triton := include "segserve.ngcRelease" $v.image.tag -}}
{{- $builder := include "segserve.ngcRelease" (include "segserve.engineBuildTag" .) -}}
{{- if and (ne $triton $builder) (not $v.engineBuild.allowVersionMismatch) -}}
{{- $errors = append $errors (printf "engineBuild.image.tag (NGC %s) must match image.tag (NGC %s): an engine only loads in the TensorRT version that built it" (default "?" $builder) (default "?" $triton)) -}}
{{- end -}}
{{- end -}}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) -}}
{{- $errors = append $errors (printf "autoscaling.minReplicas (%d) must not exceed autoscaling.maxReplicas (%d)" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.allowedNamespaces) (not $v.networkPolicy.allowedPodLabels) -}}
{{- $errors = append $errors "networkPolicy.enabled needs networkPolicy.allowedNamespaces or networkPolicy.allowedPodLabels (else nothing could reach the server)" -}}
{{- end -}}
{{- if and (eq $v.triton.modelControlMode "poll") (lt (int $v.triton.repositoryPollSeconds) 1) -}}
{{- $errors = append $errors "triton.modelControlMode=poll needs triton.repositoryPollSeconds >= 1" -}}
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
