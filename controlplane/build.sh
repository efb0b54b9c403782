#!/usr/bin/env bash
# Builds kube-apiserver, kubectl (same version, for `apply -k` and the demo), etcd and helm (for
# charts/) from Go modules (the only source reachable here) into .cache/controlplane/bin/, once
# per machine; and, for a cluster that runs Pods and provisions volumes without a kubelet,
# kube-scheduler, kube-controller-manager, kwok (fake nodes, with its stages in kwok-stages.yaml),
# csi-provisioner, csi-resizer and workspaces-csi-driver (controlplane/csi-driver); and for the
# monitoring tests promtool and prometheus, and the Prometheus Operator's CRDs; cert-manager's
# Certificate and Issuer CRDs (the cert-manager Component applied server-side); and for a real node
# (tests/node) kubelet and kube-proxy, with the host packages it needs. Each section has its own
# stamp (STAMP.<section>) keyed on its pinned version (or source hash) and the Go version: a
# second run is a no-op, and a new or bumped tool rebuilds only its section. A cold build takes
# about 16 minutes on 2 cores (966 s measured with empty Go caches, 2026-12-07; one process at
# most 2.0 GB), `demo` about 8 (496 s).
#
# Usage: build.sh [all|demo] [--files]. `all` (the default) is everything the tests use; `demo`
# only what `agent-workspace-webhook demo` runs (no helm, prometheus, csi-resizer, kubelet or
# kube-proxy, and no host packages installed). --files lists the target's files in bin/ and builds nothing.
set -euo pipefail

target=${1:-all}
list_files=${2:-}
case $target/$list_files in
  */ | */--files) ;;
  *)
    echo "controlplane: unknown option '$list_files': the only one is --files" >&2
    exit 2
    ;;
esac
case $target in
  all) sections=(kubernetes node etcd helm kwok csi-provisioner csi-resizer csi-driver prometheus prometheus-operator cert-manager) ;;
  # The demo grows no workspace: no csi-resizer (3.5 of a cold build's minutes).
  demo) sections=(kubernetes etcd kwok csi-provisioner csi-driver) ;;
  *)
    echo "controlplane: unknown target '$target': build.sh all (what the tests use, the default) or build.sh demo" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${CONTROLPLANE_CACHE:-$root/.cache/controlplane}
bin=$cache/bin
work=$cache/work
mkdir -p "$bin" "$work"

go_version=$(go env GOVERSION)
kubernetes_tools=(kube-apiserver kubectl kube-scheduler kube-controller-manager)
kubernetes_stamp="kubernetes=$KUBERNETES_VERSION go=$go_version tools=$(IFS=,; echo "${kubernetes_tools[*]}")"
# A real node's own binaries (tests/node): same version and wrapper module, their own stamp, so
# adding them did not rebuild the section above.
node_tools=(kubelet kube-proxy)
node_stamp="node=$KUBERNETES_VERSION go=$go_version tools=$(IFS=,; echo "${node_tools[*]}")"
etcd_stamp="etcd=$ETCD_VERSION go=$go_version tools=etcd"
helm_stamp="helm=$HELM_VERSION go=$go_version tools=helm"
# kwok's node and pod stages, not its volume ones: volumes come from csi-provisioner and our driver.
kwok_stages=(node/fast pod/fast)
kwok_stamp="kwok=$KWOK_VERSION go=$go_version stages=$(IFS=,; echo "${kwok_stages[*]}") tools=kwok,kwok-stages.yaml"
csi_provisioner_stamp="csi-provisioner=$CSI_PROVISIONER_VERSION go=$go_version tools=csi-provisioner"
csi_resizer_stamp="csi-resizer=$CSI_RESIZER_VERSION go=$go_version tools=csi-resizer"
prometheus_stamp="prometheus=$PROMETHEUS_VERSION go=$go_version tools=promtool,prometheus"
operator_crds=(servicemonitors podmonitors prometheusrules)
operator_files=("${operator_crds[@]/#/prometheus-operator-crds/monitoring.coreos.com_}")
operator_files=("${operator_files[@]/%/.yaml}")
operator_stamp="prometheus-operator=$PROMETHEUS_OPERATOR_VERSION crds=$(IFS=,; echo "${operator_crds[*]}")"
cert_manager_crds=(certificates issuers)
cert_manager_files=("${cert_manager_crds[@]/#/cert-manager-crds/cert-manager.io_}")
cert_manager_files=("${cert_manager_files[@]/%/.yaml}")
cert_manager_stamp="cert-manager=$CERT_MANAGER_VERSION crds=$(IFS=,; echo "${cert_manager_crds[*]}")"
# Our own driver has no version to pin: its stamp is a hash of its sources.
csi_driver_hash=$(cd "$here/csi-driver" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
csi_driver_stamp="csi-driver=$csi_driver_hash go=$go_version tools=workspaces-csi-driver"

# Each section's stamp and the files it makes.
declare -A stamp_of=(
  [kubernetes]=$kubernetes_stamp [node]=$node_stamp [etcd]=$etcd_stamp [helm]=$helm_stamp
  [kwok]=$kwok_stamp [csi-provisioner]=$csi_provisioner_stamp [csi-resizer]=$csi_resizer_stamp
  [csi-driver]=$csi_driver_stamp [prometheus]=$prometheus_stamp [prometheus-operator]=$operator_stamp
  [cert-manager]=$cert_manager_stamp
)
declare -A files_of=(
  [kubernetes]="${kubernetes_tools[*]}" [node]="${node_tools[*]}" [etcd]=etcd [helm]=helm
  [kwok]="kwok kwok-stages.yaml" [csi-provisioner]=csi-provisioner [csi-resizer]=csi-resizer
  [csi-driver]=workspaces-csi-driver [prometheus]="promtool prometheus" [prometheus-operator]="${operator_files[*]}"
  [cert-manager]="${cert_manager_files[*]}"
)
if [[ $list_files == --files ]]; then
  # shellcheck disable=SC2086 # files_of holds a space-separated list of plain file names
  for section in "${sections[@]}"; do printf '%s\n' ${files_of[$section]}; done
  exit 0
fi

# Before helm, one STAMP covered kube-apiserver, kubectl and etcd; if it matches, carry it over
# into the sections' stamps rather than rebuild etcd.
if [[ -f $bin/STAMP ]]; then
  if [[ $(cat "$bin/STAMP") == "kubernetes=$KUBERNETES_VERSION etcd=$ETCD_VERSION go=$go_version tools=kube-apiserver,kubectl,etcd" ]]; then
    # (the tools list has grown since: this stamp no longer matches, so that section rebuilds)
    echo "kubernetes=$KUBERNETES_VERSION go=$go_version tools=kube-apiserver,kubectl" >"$bin/STAMP.kubernetes"
    echo "$etcd_stamp" >"$bin/STAMP.etcd"
  fi
  rm "$bin/STAMP"
fi

# current SECTION STAMP FILE...: the section's files (binaries, or a .yaml) are there and were
# built for STAMP.
current() {
  local section=$1 stamp=$2 file
  shift 2
  for file in "$@"; do
    [[ -x $bin/$file || ($file == *.yaml && -s $bin/$file) ]] || return 1
  done
  [[ -f $bin/STAMP.$section && $(cat "$bin/STAMP.$section") == "$stamp" ]]
}

# The real node's host packages (tests/node): a container runtime, CNI plugins, iptables for
# kube-proxy, docker and debootstrap to build the image. Installed from Debian's packages when
# missing and we are root; otherwise tests/node says what is missing and skips.
node_packages=(docker.io containerd runc debootstrap containernetworking-plugins iptables gcc libc6-dev)
missing=()
if [[ " ${sections[*]} " == *" node "* ]]; then
  for package in "${node_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
fi
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "controlplane: apt-get install ${missing[*]} (the real node's host packages)"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "controlplane: not root: the node tier (tests/node) will skip without ${missing[*]}"
  fi
fi

stale=()
for section in "${sections[@]}"; do
  # shellcheck disable=SC2086 # as above
  current "$section" "${stamp_of[$section]}" ${files_of[$section]} || stale+=("$section")
done
if ((${#stale[@]} == 0)); then
  echo "controlplane: cached binaries match for $target ($(for section in "${sections[@]}"; do printf '%s; ' "${stamp_of[$section]}"; done | sed 's/; $//')), nothing to build"
  exit 0
fi

say() { echo "controlplane: [$(date +%H:%M:%S)] $*"; }
export GOFLAGS=-mod=mod
started=$SECONDS
declare -A first_build=([demo]="about 8 minutes on 2 cores (496 s measured)" [all]="about 16 minutes on 2 cores (966 s measured)")
say "building ${stale[*]} for '$target' from Go modules: the first build on a machine takes ${first_build[$target]}, about a minute with Go's build cache warm; later runs build nothing"

# wrapper DIR GO MODULE VERSION PACKAGE: a module in DIR that requires MODULE at VERSION and
# imports PACKAGE, so that `go mod tidy` and `go build PACKAGE` there use MODULE's own versions.
wrapper() {
  local dir=$1 go=$2 module=$3 version=$4 package=$5
  mkdir -p "$dir"
  printf 'module local/%s-build\n\ngo %s\n\nrequire %s %s\n' "$(basename "$dir")" "$go" "$module" "$version" >"$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$package" >"$dir/tools.go"
}

# --- kube-apiserver, kubectl, kube-scheduler, kube-controller-manager ----------------------
# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging
# paths that only exist in its own repository, so `go install` fails. A wrapper module
# replaces each of them with the published k8s.io/X v0.MINOR.PATCH instead.
build_kubernetes_module() {
  local staging_version="v0.${KUBERNETES_VERSION#v1.}"
  local kdir=$work/kube-apiserver kmod
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
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  say "go mod tidy (kube-apiserver)"
  (cd "$kdir" && go mod tidy)
}
build_kubernetes() {
  local kdir=$work/kube-apiserver minor ldflags
  build_kubernetes_module
  minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  say "go build kube-apiserver (the slow part: about 3.5 minutes on 2 cores when cold)"
  (cd "$kdir" && go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver.new" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$bin/kube-apiserver.new" "$bin/kube-apiserver"
  # The rest share most packages with kube-apiserver: about a minute for all three once it is built.
  for tool in kubectl kube-scheduler kube-controller-manager; do
    say "go build $tool"
    (cd "$kdir" && go build -trimpath -ldflags "$ldflags" -o "$bin/$tool.new" "k8s.io/kubernetes/cmd/$tool")
    mv "$bin/$tool.new" "$bin/$tool"
  done
}

# --- kubelet and kube-proxy ---------------------------------------------------------------
# From the wrapper module build_kubernetes made (made here too when that section was current).
build_node() {
  local kdir=$work/kube-apiserver minor ldflags tool
  [[ -f $kdir/go.mod ]] || build_kubernetes_module
  minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  for tool in "${node_tools[@]}"; do
    say "go build $tool (about 100 s for both with a warm Go cache, 285 s cold)"
    (cd "$kdir" && go build -trimpath -ldflags "$ldflags" -o "$bin/$tool.new" "k8s.io/kubernetes/cmd/$tool")
    mv "$bin/$tool.new" "$bin/$tool"
  done
}

# --- etcd ----------------------------------------------------------------------------------
# etcd's server module has its own replace lines, so it is built from a wrapper module too;
# its main package is the module root.
build_etcd() {
  local edir=$work/etcd
  wrapper "$edir" 1.24 go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
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

# --- kwok ----------------------------------------------------------------------------------
# kwok plays the kubelet for Node objects annotated kwok.x-k8s.io/node=fake, driven by Stage
# objects it refuses to start without. Its stages ship in its module as kustomizations; their
# resources are concatenated into one file for `kwok --config`.
build_kwok() {
  local wdir=$work/kwok mdir stage file
  wrapper "$wdir" 1.26 sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
  say "go mod tidy (kwok $KWOK_VERSION)"
  (cd "$wdir" && go mod tidy)
  say "go build kwok (about 70 s on 2 cores when cold)"
  (cd "$wdir" && go build -trimpath -ldflags "-s -w" -o "$bin/kwok.new" sigs.k8s.io/kwok/cmd/kwok)
  mdir=$(cd "$wdir" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  for stage in "${kwok_stages[@]}"; do
    for file in $(sed -n 's/^- \(.*\.yaml\)$/\1/p' "$mdir/kustomize/stage/$stage/kustomization.yaml"); do
      echo "# kwok $KWOK_VERSION kustomize/stage/$stage/$file"
      cat "$mdir/kustomize/stage/$stage/$file"
      echo "---"
    done
  done >"$bin/kwok-stages.yaml.new"
  mv "$bin/kwok-stages.yaml.new" "$bin/kwok-stages.yaml"
  mv "$bin/kwok.new" "$bin/kwok"
}

# --- csi-provisioner and csi-resizer ------------------------------------------------------
# The kubernetes-csi sidecars' go.mod files replace the k8s.io modules (as k8s.io/kubernetes
# needs), so `go install` refuses them; a wrapper module that requires one and copies its
# replace lines builds it. sidecar NAME MODULE VERSION: builds MODULE/cmd/NAME into bin/NAME.
sidecar() {
  local name=$1 module=$2 version=$3 wdir=$work/$1 pmod
  mkdir -p "$wdir"
  say "resolving $module $version"
  pmod=$(cd "$wdir" && GOFLAGS='' go mod download -json "$module@$version" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module local/$name-build"
    echo
    echo "go $(sed -n 's/^go \(.*\)$/\1/p' "$pmod")"
    echo
    echo "require $module $version"
    echo
    # both forms: `replace a => b v` lines and `replace ( ... )` blocks
    sed -n -e '/^replace ($/,/^)$/p' -e '/^replace [^(]/p' "$pmod"
  } >"$wdir/go.mod"
  cat >"$wdir/tools.go" <<GO
//go:build tools

package tools

import _ "$module/cmd/$name"
GO
  say "go mod tidy ($name)"
  (cd "$wdir" && go mod tidy)
  say "go build $name (about 2 minutes on 2 cores)"
  (cd "$wdir" && go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$bin/$name.new" "$module/cmd/$name")
  mv "$bin/$name.new" "$bin/$name"
}
build_csi-provisioner() { sidecar csi-provisioner github.com/kubernetes-csi/external-provisioner/v6 "$CSI_PROVISIONER_VERSION"; }
# The resizer turns a PVC's raised request into ControllerExpandVolume (WEBHOOK_GROW_EXISTING).
build_csi-resizer() { sidecar csi-resizer github.com/kubernetes-csi/external-resizer/v2 "$CSI_RESIZER_VERSION"; }

# --- promtool and prometheus -----------------------------------------------------------------
# One module, two commands: promtool checks and unit-tests the chart's alert rules, the server
# scrapes a running webhook in the e2e suite (its web UI assets are not built: the API is enough).
build_prometheus() {
  local module=github.com/prometheus/prometheus
  say "go install promtool and prometheus $PROMETHEUS_VERSION (a few minutes on 2 cores when cold)"
  rm -rf "$work/prometheus-bin" && mkdir -p "$work/prometheus-bin"
  GOBIN="$work/prometheus-bin" go install -trimpath -ldflags "-s -w" \
    "$module/cmd/promtool@$PROMETHEUS_VERSION" "$module/cmd/prometheus@$PROMETHEUS_VERSION"
  mv "$work/prometheus-bin/promtool" "$work/prometheus-bin/prometheus" "$bin/"
}

# --- CRDs of other projects ------------------------------------------------------------------
# Only CRD files, from a project's Go module: nothing of the project runs here; the objects our
# Components add are checked against them by the API server (kubectl apply --dry-run=server).
# crds_from MODULE VERSION DIR_IN_MODULE PREFIX DEST NAME...: DIR_IN_MODULE/PREFIX$NAME.yaml into bin/DEST.
crds_from() {
  local module=$1 version=$2 from=$3 prefix=$4 dest=$5 dir name
  shift 5
  dir=$(cd "$work" && GOFLAGS='' go mod download -json "$module@$version" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$bin/$dest"
  for name in "$@"; do
    cp "$dir/$from/$prefix$name.yaml" "$bin/$dest/"
  done
  chmod u+w "$bin/$dest/"*
}

# The Prometheus Operator's ServiceMonitor, PodMonitor and PrometheusRule (the monitoring Component).
build_prometheus-operator() {
  say "the Prometheus Operator's CRDs ($PROMETHEUS_OPERATOR_VERSION)"
  crds_from github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" \
    example/prometheus-operator-crd monitoring.coreos.com_ prometheus-operator-crds "${operator_crds[@]}"
}

# cert-manager's Certificate and Issuer (the cert-manager Component).
build_cert-manager() {
  say "cert-manager's CRDs ($CERT_MANAGER_VERSION)"
  crds_from github.com/cert-manager/cert-manager "$CERT_MANAGER_VERSION" \
    deploy/crds cert-manager.io_ cert-manager-crds "${cert_manager_crds[@]}"
}

# --- workspaces-csi-driver -----------------------------------------------------------------
# Our stand-in for csi-driver-host-path (see csi-driver/main.go). Built from the checkout with
# its committed go.sum, read-only: the build never edits the source tree.
build_csi-driver() {
  say "go build workspaces-csi-driver"
  (cd "$here/csi-driver" && GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false -ldflags "-s -w" \
    -o "$bin/workspaces-csi-driver.new" .)
  mv "$bin/workspaces-csi-driver.new" "$bin/workspaces-csi-driver"
}

# section SECTION STAMP FILE...: build a section unless its binaries and stamp are current.
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

for section in "${sections[@]}"; do
  # shellcheck disable=SC2086 # as above
  section "$section" "${stamp_of[$section]}" ${files_of[$section]}
done

built="$("$bin/kube-apiserver" --version) / etcd $ETCD_VERSION / kwok $KWOK_VERSION / csi-provisioner $CSI_PROVISIONER_VERSION"
built+=" / workspaces-csi-driver $csi_driver_hash"
if [[ $target == all ]]; then
  built+=" / csi-resizer $CSI_RESIZER_VERSION / kubelet, kube-proxy / helm $HELM_VERSION / prometheus $PROMETHEUS_VERSION / operator CRDs $PROMETHEUS_OPERATOR_VERSION / cert-manager CRDs $CERT_MANAGER_VERSION"
fi
say "built $target in $((SECONDS - started)) s: $built"
