"""Developer tooling, as kopf keeps `kopf.testing`: never imported by `serve`.

objects (AdmissionReviews and controller-shaped objects, pure) ; controlplane (etcd +
kube-apiserver on 127.0.0.1) ; install (the webhook into it, from manifests/) ; local_webhook
(`serve` as a child process) ; demo (`agent-workspace-webhook demo`).
"""
