#!/usr/bin/env bash
# Builds kube-apiserver, kubectl (same version, for `apply -k` and the demo) and etcd from Go modules (the only source reachable here) into
# .cache/controlplane/bin/, once per machine: a stamp keyed on the pinned versions and the Go
# version makes a second run a no-op. A cold build takes several minutes on 2 cores.
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
stamp="kubernetes=$KUBERNETES_VERSION etcd=$ETCD_VERSION go=$go_version tools=kube-apiserver,kubectl,etcd"
if [[ -x $bin/kube-apiserver && -x $bin/kubectl && -x $bin/etcd && -f $bin/STAMP && $(cat "$bin/STAMP") == "$stamp" ]]; then
  echo "controlplane: cached binaries match ($stamp), nothing to build"
  exit 0
fi

say() { echo "controlplane: [$(date +%H:%M:%S)] $*"; }
export GOFLAGS=-mod=mod
started=$SECONDS

# --- kube-apiserver ----------------------------------------------------------------------
# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging
# paths that only exist in its own repository, so `go install` fails. A wrapper module
# replaces each of them with the published k8s.io/X v0.MINOR.PATCH instead.
staging_version="v0.${KUBERNETES_VERSION#v1.}"
kdir=$work/kube-apiserver
mkdir -p "$kdir"
say "resolving k8s.io/kubernetes $KUBERNETES_VERSION (staging modules at $staging_version)"
kmod=$(cd "$kdir" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
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
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
say "go build kube-apiserver (the slow part: about 2.5 minutes on 2 cores when cold)"
(cd "$kdir" && go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver.new" k8s.io/kubernetes/cmd/kube-apiserver)
mv "$bin/kube-apiserver.new" "$bin/kube-apiserver"
say "go build kubectl"
(cd "$kdir" && go build -trimpath -ldflags "$ldflags" -o "$bin/kubectl.new" k8s.io/kubernetes/cmd/kubectl)
mv "$bin/kubectl.new" "$bin/kubectl"

# --- etcd ----------------------------------------------------------------------------------
# etcd's server module has its own replace lines, so it is built from a wrapper module too;
# its main package is the module root.
edir=$work/etcd
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

echo "$stamp" >"$bin/STAMP"
say "built in $((SECONDS - started)) s: $("$bin/kube-apiserver" --version) / kubectl $("$bin/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])') / $("$bin/etcd" --version | head -1)"
