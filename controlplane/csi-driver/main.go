// Command workspaces-csi-driver is a minimal CSI controller plugin for the local control plane.
//
// It stands in for csi-driver-host-path, upstream's reference driver, which the Go module proxy
// (the only source reachable here) does not serve. The real external-provisioner talks to it, so
// PVC provisioning and cloning (dataSource: PersistentVolumeClaim) take the same path through
// kube-controller-manager and the provisioner as in a cluster, which kwok's volume stages do not.
// A volume is the directory <state-dir>/<volume-id>, its size and source recorded beside it in
// <volume-id>.json. kwok's nodes run no kubelet, so nothing is ever mounted: only the Identity and
// Controller services are implemented (create, delete, clone, and expand, which only records the
// new size: a directory has none of its own); every other RPC answers Unimplemented.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"io/fs"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const driverName = "workspaces.csi.local"

// The provisioner names volumes pvc-<uid>; the name is the volume id and, unchecked, a path.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

type volume struct {
	Name     string `json:"name"`
	Bytes    int64  `json:"capacityBytes"`
	SourceID string `json:"sourceVolumeId,omitempty"`
}

type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	dir string
	mu  sync.Mutex // one create or delete at a time: a clone must not see a half-copied source
}

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: driverName, VendorVersion: "0.1.0"}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}}},
		{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{Type: csi.PluginCapability_VolumeExpansion_ONLINE}}},
	}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME, csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
		})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// checkCaps refuses raw block volumes: a directory can only be a filesystem volume.
func checkCaps(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities missing")
	}
	for _, c := range caps {
		if c.GetMount() == nil {
			return status.Error(codes.InvalidArgument, "only filesystem (mount) volumes are supported")
		}
	}
	return nil
}

func (d *driver) load(id string) (*volume, error) {
	data, err := os.ReadFile(filepath.Join(d.dir, id+".json"))
	if err != nil {
		return nil, err
	}
	v := &volume{}
	return v, json.Unmarshal(data, v)
}

func (d *driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	id := req.GetName()
	if !validID.MatchString(id) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid volume name %q", id)
	}
	if err := checkCaps(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource().GetSnapshot() != nil {
		return nil, status.Error(codes.InvalidArgument, "snapshots are not supported")
	}
	want := &volume{Name: id, Bytes: req.GetCapacityRange().GetRequiredBytes(), SourceID: req.GetVolumeContentSource().GetVolume().GetVolumeId()}
	if want.Bytes == 0 {
		want.Bytes = req.GetCapacityRange().GetLimitBytes()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	resp := &csi.CreateVolumeResponse{Volume: &csi.Volume{VolumeId: id, CapacityBytes: want.Bytes, ContentSource: req.GetVolumeContentSource()}}
	// The JSON file is written last: it marks a complete volume, and makes a retried call a no-op.
	if have, err := d.load(id); err == nil {
		if *have != *want {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s exists with other parameters (%+v)", id, *have)
		}
		return resp, nil
	}
	path := filepath.Join(d.dir, id)
	if err := os.RemoveAll(path); err != nil { // a partial copy from an interrupted call
		return nil, status.Error(codes.Internal, err.Error())
	}
	if want.SourceID != "" {
		if !validID.MatchString(want.SourceID) {
			return nil, status.Errorf(codes.NotFound, "source volume %q not found", want.SourceID)
		}
		src, err := d.load(want.SourceID)
		if err != nil {
			return nil, status.Errorf(codes.NotFound, "source volume %s not found", want.SourceID)
		}
		if want.Bytes < src.Bytes {
			return nil, status.Errorf(codes.OutOfRange, "volume of %d bytes is smaller than its source (%d bytes)", want.Bytes, src.Bytes)
		}
		if err := copyTree(filepath.Join(d.dir, want.SourceID), path); err != nil {
			return nil, status.Errorf(codes.Internal, "cloning %s: %v", want.SourceID, err)
		}
	} else if err := os.Mkdir(path, 0o777); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	data, _ := json.Marshal(want)
	if err := os.WriteFile(filepath.Join(d.dir, id+".json"), data, 0o644); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("created volume %s (%d bytes, source %q)", id, want.Bytes, want.SourceID)
	return resp, nil
}

func (d *driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if !validID.MatchString(id) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid volume id %q", id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// The JSON file goes first, so that a half-removed directory is never taken for a volume.
	if err := os.Remove(filepath.Join(d.dir, id+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := os.RemoveAll(filepath.Join(d.dir, id)); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Printf("deleted volume %s", id)
	return &csi.DeleteVolumeResponse{}, nil
}

// ControllerExpandVolume records the larger size (never a smaller one); no node step follows.
func (d *driver) ControllerExpandVolume(_ context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	if !validID.MatchString(id) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid volume id %q", id)
	}
	want := req.GetCapacityRange().GetRequiredBytes()
	if want <= 0 {
		return nil, status.Error(codes.InvalidArgument, "capacity range with required bytes missing")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, err := d.load(id)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found", id)
	}
	if want > v.Bytes {
		v.Bytes = want
		data, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(d.dir, id+".json"), data, 0o644); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		log.Printf("expanded volume %s to %d bytes", id, want)
	}
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: v.Bytes, NodeExpansionRequired: false}, nil
}

func (d *driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if !validID.MatchString(id) {
		return nil, status.Errorf(codes.NotFound, "volume %q not found", id)
	}
	if _, err := d.load(id); err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %q not found", id)
	}
	if err := checkCaps(req.GetVolumeCapabilities()); err != nil {
		if len(req.GetVolumeCapabilities()) == 0 {
			return nil, err
		}
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: req.GetVolumeContext(), VolumeCapabilities: req.GetVolumeCapabilities(), Parameters: req.GetParameters(),
	}}, nil
}

// copyTree copies directories, regular files (with their modes) and symlinks (as links).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case e.IsDir():
			return os.Mkdir(target, info.Mode().Perm())
		case e.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case e.Type().IsRegular():
			in, err := os.Open(path)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
		return nil // sockets, fifos, devices: not workspace content
	})
}

func main() {
	endpoint := flag.String("endpoint", "unix:///tmp/csi.sock", "CSI endpoint, unix:///path/to/csi.sock")
	stateDir := flag.String("state-dir", "", "directory that holds the volumes (created if missing)")
	flag.Parse()
	sock, ok := strings.CutPrefix(*endpoint, "unix://")
	if !ok || *stateDir == "" {
		log.Fatal("usage: workspaces-csi-driver --endpoint unix:///path/csi.sock --state-dir DIR")
	}
	if err := os.MkdirAll(*stateDir, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) { // left by a killed run
		log.Fatal(err)
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	d := &driver{dir: *stateDir}
	srv := grpc.NewServer()
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterControllerServer(srv, d)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-stop; srv.GracefulStop() }()
	log.Printf("%s serving on %s, volumes in %s", driverName, sock, *stateDir)
	if err := srv.Serve(lis); err != nil {
		log.Fatal(err)
	}
}
