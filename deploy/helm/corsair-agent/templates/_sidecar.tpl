{{- /*
The agent container, its volumes and its pod annotations as named
templates: the proxy Deployment uses them, and so can any chart that adds
the agent to its own gateway pod (add corsair-agent as a dependency with
`mode: sidecar`, then include these). Each takes a dict:

  values      the agent chart's values (e.g. `index .Values "corsair-agent"`)
  native      true: the Kubernetes >= 1.29 native sidecar, an init container
              with `restartPolicy: Always` (put it under initContainers:);
              false: the classic form (put it under containers:)
  appVersion  image tag when values.image.tag is empty (optional)
  kubeVersion .Capabilities.KubeVersion.Version, for the preStop sleep
              action (>= 1.30; optional: without it, or before 1.30, the
              agent gets `--drain-delay` instead, so it still keeps
              accepting for drainSeconds after SIGTERM)

A native sidecar is stopped after the pod's main containers, and a classic
one at the same time as them: either way the gateway behind the agent can
be gone while the agent still takes traffic. Give the gateway container a
preStop sleep of drainSeconds too (the example chart does), and a
terminationGracePeriodSeconds that covers both.

  initContainers:
    {{- include "corsair-agent.sidecar.container" (dict "values" $agent "native" true "kubeVersion" .Capabilities.KubeVersion.Version) | nindent 4 }}
  volumes:
    {{- include "corsair-agent.sidecar.volumes" (dict "values" $agent) | nindent 4 }}

Names are prefixed `corsair-` so they do not collide with the gateway's.
*/}}
{{- define "corsair-agent.sidecar.container" -}}
{{- $v := .values -}}
{{- $tag := required "corsair-agent: set image.tag (or pass appVersion)" (default .appVersion $v.image.tag) -}}
{{- $drain := gt (int $v.drainSeconds) 0 -}}
{{- $preStop := and $drain .kubeVersion (semverCompare ">=1.30-0" (default "0.0.0" .kubeVersion)) -}}
{{- /* The agent refuses --upstream-ca-file with an http:// upstream at start-up; say so at render time instead of in a crash-looping pod. */}}
{{- if and $v.upstreamTls.caSecret (not (hasPrefix "https://" $v.upstream)) }}
{{- fail (printf "corsair-agent: upstreamTls.caSecret (%s) is for an https:// upstream, but upstream is %s: make upstream an https:// URL, or unset upstreamTls.caSecret" $v.upstreamTls.caSecret $v.upstream) }}
{{- end -}}
- name: corsair-agent
  image: {{ printf "%s:%s" $v.image.repository $tag | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if .native }}
  restartPolicy: Always
  {{- end }}
  args:
    - proxy
    - --control-plane={{ $v.controlPlane }}
    - --token-file=/etc/corsair/token/{{ $v.token.secretKey }}
    - --service={{ $v.corsairService }}
    - --listen=0.0.0.0:{{ $v.ports.http }}
    - --upstream={{ $v.upstream }}
    - --cache-dir=/var/cache/corsair
    - --metrics=0.0.0.0:{{ $v.ports.admin }}
    - --agent-name={{ default "$(POD_NAME)" $v.agentName }}
    - --report-interval={{ $v.reportInterval }}
    - --log-format={{ $v.logFormat }}
    - --drain-timeout={{ $v.drainTimeoutSeconds }}
    {{- if and $drain (not $preStop) }}
    {{- /* No preStop sleep to keep serving while endpoints update: the agent's own delay does it. */}}
    - --drain-delay={{ $v.drainSeconds }}
    {{- end }}
    {{- if $v.tls.caSecret }}
    - --ca-file=/etc/corsair/ca/{{ $v.tls.caKey }}
    {{- end }}
    {{- if $v.tls.clientCertSecret }}
    - --client-cert-file=/etc/corsair/client/tls.crt
    - --client-key-file=/etc/corsair/client/tls.key
    {{- end }}
    {{- if $v.upstreamTls.caSecret }}
    - --upstream-ca-file=/etc/corsair/upstream-ca/{{ $v.upstreamTls.caKey }}
    {{- end }}
    {{- with $v.extraArgs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: RUST_LOG
      value: {{ $v.logLevel | quote }}
  ports:
    - name: corsair-http
      containerPort: {{ $v.ports.http }}
      protocol: TCP
    - name: corsair-admin
      containerPort: {{ $v.ports.admin }}
      protocol: TCP
  {{- /* Ready only once a policy (or the cached one) is loaded: before that the agent fails closed. */}}
  readinessProbe:
    httpGet:
      path: /readyz
      port: corsair-admin
    periodSeconds: 2
    failureThreshold: 2
  livenessProbe:
    httpGet:
      path: /healthz
      port: corsair-admin
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 3
  {{- if $preStop }}
  {{- /* Keep serving while endpoints update; the image has no shell, hence the sleep action. */}}
  lifecycle:
    preStop:
      sleep:
        seconds: {{ $v.drainSeconds }}
  {{- end }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    capabilities:
      drop: ["ALL"]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    - name: corsair-token
      mountPath: /etc/corsair/token
      readOnly: true
    - name: corsair-cache
      mountPath: /var/cache/corsair
    {{- if $v.tls.caSecret }}
    - name: corsair-ca
      mountPath: /etc/corsair/ca
      readOnly: true
    {{- end }}
    {{- if $v.tls.clientCertSecret }}
    - name: corsair-client-cert
      mountPath: /etc/corsair/client
      readOnly: true
    {{- end }}
    {{- if $v.upstreamTls.caSecret }}
    {{- /* The whole directory, not a subPath: only then does the kubelet update the file when the Secret changes, and the agent re-reads it for every new upstream connection. */}}
    - name: corsair-upstream-ca
      mountPath: /etc/corsair/upstream-ca
      readOnly: true
    {{- end }}
{{- end }}

{{- define "corsair-agent.sidecar.volumes" -}}
{{- $v := .values -}}
- name: corsair-token
  secret:
    secretName: {{ $v.token.secretName }}
    defaultMode: 0440
- name: corsair-cache
  emptyDir:
    sizeLimit: {{ $v.cacheSizeLimit }}
{{- if $v.tls.caSecret }}
- name: corsair-ca
  secret:
    secretName: {{ $v.tls.caSecret }}
    defaultMode: 0440
{{- end }}
{{- if $v.tls.clientCertSecret }}
- name: corsair-client-cert
  secret:
    secretName: {{ $v.tls.clientCertSecret }}
    defaultMode: 0440
{{- end }}
{{- if $v.upstreamTls.caSecret }}
- name: corsair-upstream-ca
  secret:
    secretName: {{ $v.upstreamTls.caSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{- /* Prometheus scrape annotations for the agent's admin port. */}}
{{- define "corsair-agent.sidecar.podAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .values.ports.admin | quote }}
prometheus.io/path: /metrics
{{- end }}
