#!/usr/bin/env bash
# Builds kube-apiserver, kubectl (same version, for `apply -k` and the demo), etcd and helm (for
# charts/) from Go modules (the only source reachable here) into .cache/controlplane/bin/, once
# per machine. Each section has its own stamp (STAMP.<section>) keyed on its pinned version and
# the Go version: a second run is a no-op, and a new or bumped tool rebuilds only its section.
# A cold build takes several minutes on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${CONTROLPLANE_CACHE:-$root/.cache/controlplane}
bin=$cache/bin
work=$cache/work
mkdir -p "$bin" "$work"

go_version=$(go env GOVERSION)
kubernetes_stamp="kubernetes=$KUBERNETES_VERSION go=$go_version tools=kube-apiserver,kubectl"
etcd_stamp="etcd=$ETCD_VERSION go=$go_version tools=etcd"
helm_stamp="helm=$HELM_VERSION go=$go_version tools=helm"

# Before helm, one STAMP covered kube-apiserver, kubectl and etcd; if it matches, carry it over
# into the sections' stamps rather than rebuild them.
if [[ -f $bin/STAMP ]]; then
  if [[ $(cat "$bin/STAMP") == "kubernetes=$KUBERNETES_VERSION etcd=$ETCD_VERSION go=$go_version tools=kube-apiserver,kubectl,etcd" ]]; then
    echo "$kubernetes_stamp" >"$bin/STAMP.kubernetes"
    echo "$etcd_stamp" >"$bin/STAMP.etcd"
  fi
  rm "$bin/STAMP"
fi

# current SECTION STAMP BINARY...: the section's binaries are there and were built for STAMP.
current() {
  local section=$1 stamp=$2 binary
  shift 2
  for binary in "$@"; do
    [[ -x $bin/$binary ]] || return 1
  done
  [[ -f $bin/STAMP.$section && $(cat "$bin/STAMP.$section") == "$stamp" ]]
}

if current kubernetes "$kubernetes_stamp" kube-apiserver kubectl && current etcd "$etcd_stamp" etcd &&
  current helm "$helm_stamp" helm; then
  echo "controlplane: cached binaries match ($kubernetes_stamp; $etcd_stamp; $helm_stamp), nothing to build"
  exit 0
fi

say() { echo "controlplane: [$(date +%H:%M:%S)] $*"; }
export GOFLAGS=-mod=mod
started=$SECONDS

# --- kube-apiserver, kubectl ---------------------------------------------------------------
# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging
# paths that only exist in its own repository, so `go install` fails. A wrapper module
# replaces each of them with the published k8s.io/X v0.MINOR.PATCH instead.
build_kubernetes() {
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  local kdir=$work/kube-apiserver kmod minor ldflags
  mkdir -p "$kdir"
  say "resolving k8s.io/kubernetes $KUBERNETES_VERSION (staging modules at $staging_version)"
  kmod=$(cd "$kdir" && GOFLAGS='' go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module local/kube-apiserver-build"
    echo
    echo "go $(sed -n 's/^go \(.*\)$/\1/p' "$kmod")"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*$#\t\1 => \1 '"$staging_version"'#p' "$kmod"
    echo ")"
  } >"$kdir/go.mod"
  cat >"$kdir/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  say "go mod tidy (kube-apiserver)"
  (cd "$kdir" && go mod tidy)
  minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  say "go build kube-apiserver (the slow part: about 2.5 minutes on 2 cores when cold)"
  (cd "$kdir" && go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver.new" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$bin/kube-apiserver.new" "$bin/kube-apiserver"
  say "go build kubectl"
  (cd "$kdir" && go build -trimpath -ldflags "$ldflags" -o "$bin/kubectl.new" k8s.io/kubernetes/cmd/kubectl)
  mv "$bin/kubectl.new" "$bin/kubectl"
}

# --- etcd ----------------------------------------------------------------------------------
# etcd's server module has its own replace lines, so it is built from a wrapper module too;
# its main package is the module root.
build_etcd() {
  local edir=$work/etcd
  mkdir -p "$edir"
  cat >"$edir/go.mod" <<MOD
module local/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat >"$edir/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  say "go mod tidy (etcd $ETCD_VERSION)"
  (cd "$edir" && go mod tidy)
  say "go build etcd"
  (cd "$edir" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.new" go.etcd.io/etcd/server/v3)
  mv "$bin/etcd.new" "$bin/etcd"
}

# --- helm ----------------------------------------------------------------------------------
# helm's module has no replace lines, so `go install module@version` builds it with its own
# go.mod and go.sum. The ldflags are those of helm's Makefile: its version, and the Kubernetes
# version of the client-go it is built with, which `helm template` and `helm lint` take as the
# cluster's version (.Capabilities.KubeVersion; 1.20 without them).
build_helm() {
  local hdir=$work/helm hmod client_go ldflags
  mkdir -p "$hdir"
  say "resolving helm.sh/helm/v3 $HELM_VERSION"
  hmod=$(cd "$hdir" && GOFLAGS='' go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  client_go=$(sed -n 's#^[[:space:]]*k8s\.io/client-go v0\.\([0-9]*\)\..*$#\1#p' "$hmod")
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata="
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$client_go"
  done
  say "go install helm (about a minute on 2 cores when cold)"
  (cd "$hdir" && GOFLAGS='' GOBIN=$hdir CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
  mv "$hdir/helm" "$bin/helm"
}

# section SECTION STAMP BINARY...: build a section unless its binaries and stamp are current.
section() {
  local section=$1 stamp=$2
  if current "$@"; then
    say "$section: cached binaries match ($stamp)"
    return
  fi
  rm -f "$bin/STAMP.$section"
  "build_$section"
  echo "$stamp" >"$bin/STAMP.$section"
}

section kubernetes "$kubernetes_stamp" kube-apiserver kubectl
section etcd "$etcd_stamp" etcd
section helm "$helm_stamp" helm

say "built in $((SECONDS - started)) s: $("$bin/kube-apiserver" --version) / kubectl $("$bin/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])') / $("$bin/etcd" --version | head -1) / helm $("$bin/helm" version --template '{{.Version}}')"
