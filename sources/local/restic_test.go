//go:build linux

package local_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/sources"
)

// restic drives the restic 0.19.1 binary on a throwaway repository: the
// oracle for the snapshot layout and for what a node records.
type restic struct {
	t   *testing.T
	bin string
	env []string
}

func newRestic(t *testing.T) *restic {
	t.Helper()
	r := &restic{t: t, bin: testtools.Binary(t, "restic")}
	r.env = append(os.Environ(), "RESTIC_PASSWORD=test",
		"RESTIC_REPOSITORY="+filepath.Join(t.TempDir(), "repo"), "RESTIC_CACHE_DIR="+t.TempDir(), "TZ=UTC")
	r.run("", "init")
	return r
}

// run runs restic in dir and returns its standard output.
func (r *restic) run(dir string, args ...string) []byte {
	r.t.Helper()
	out, err := r.runErr(dir, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

func (r *restic) runErr(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command(r.bin, args...)
	cmd.Env = r.env
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &resticError{args, err, stderr.String()}
	}
	return out, nil
}

type resticError struct {
	args   []string
	err    error
	stderr string
}

func (e *resticError) Error() string {
	return "restic " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.stderr
}

// backup backs up args (targets and options) from dir and returns the
// snapshot ID.
func (r *restic) backup(dir string, args ...string) (string, error) {
	out, err := r.runErr(dir, append([]string{"backup", "--json", "--host", "oracle"}, args...)...)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var msg struct {
			Type string `json:"message_type"`
			ID   string `json:"snapshot_id"`
		}
		if json.Unmarshal(sc.Bytes(), &msg) == nil && msg.Type == "summary" {
			return msg.ID, nil
		}
	}
	return "", &resticError{args, os.ErrNotExist, "no summary in the output:\n" + string(out)}
}

// dryRun runs a dry-run backup from dir and returns the paths restic
// would store, sorted, directories with a trailing slash. restic reports
// only files and directories this way.
func (r *restic) dryRun(dir string, args ...string) ([]string, error) {
	out, err := r.runErr(dir, append([]string{"backup", "--dry-run", "--json", "-vv", "--force", "--host", "oracle"}, args...)...)
	if err != nil {
		return nil, err
	}
	var items []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var msg struct {
			Type   string `json:"message_type"`
			Action string `json:"action"`
			Item   string `json:"item"`
		}
		if json.Unmarshal(sc.Bytes(), &msg) == nil && msg.Type == "verbose_status" && msg.Item != "" {
			items = append(items, msg.Item)
		}
	}
	slices.Sort(items)
	return items, nil
}

// lsNode is a node as `restic ls --json` prints it.
type lsNode struct {
	Type  string    `json:"type"`
	Path  string    `json:"path"`
	UID   uint32    `json:"uid"`
	GID   uint32    `json:"gid"`
	Size  int64     `json:"size"`
	Mode  uint32    `json:"mode"`
	MTime time.Time `json:"mtime"`
	ATime time.Time `json:"atime"`
	CTime time.Time `json:"ctime"`
	Inode uint64    `json:"inode"`
	Kind  string    `json:"struct_type"`
	// Paths is set on the snapshot line.
	Paths []string `json:"paths"`
}

// listing is a snapshot as `restic ls --json` shows it.
type listing struct {
	paths []string // the snapshot's paths
	lines []string // "path type" per node, sorted; paths lose bytes that are not UTF-8 (JSON)
	nodes map[string]lsNode
}

// ls lists a snapshot. It may run on any goroutine.
func (r *restic) ls(id string) (*listing, error) {
	out, err := r.runErr("", "ls", "--json", id)
	if err != nil {
		return nil, err
	}
	l := &listing{nodes: map[string]lsNode{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var n lsNode
		if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
			return nil, &resticError{[]string{"ls"}, err, sc.Text()}
		}
		switch n.Kind {
		case "node":
			l.lines = append(l.lines, n.Path+" "+n.Type)
			l.nodes[n.Path] = n
		case "snapshot":
			l.paths = n.Paths
		}
	}
	slices.Sort(l.lines)
	return l, nil
}

// treeNode is a node as restic stores it in a tree blob.
type treeNode struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	Mode          uint32 `json:"mode"`
	User          string `json:"user"`
	Group         string `json:"group"`
	DeviceID      uint64 `json:"device_id"`
	Links         uint64 `json:"links"`
	LinkTarget    string `json:"linktarget"`
	LinkTargetRaw []byte `json:"linktarget_raw"`
	Xattrs        []struct {
		Name  string `json:"name"`
		Value []byte `json:"value"`
	} `json:"extended_attributes"`
	Device uint64 `json:"device"`
}

// tree returns the nodes of the directory at path in a snapshot.
func (r *restic) tree(id, path string) []treeNode {
	r.t.Helper()
	var tree struct {
		Nodes []treeNode `json:"nodes"`
	}
	if err := json.Unmarshal(r.run("", "cat", "tree", id+":"+path), &tree); err != nil {
		r.t.Fatalf("restic cat tree %s: %v", path, err)
	}
	return tree.Nodes
}

// lossy converts a path to what restic's JSON output shows of it.
func lossy(p string) string {
	b, _ := json.Marshal(p)
	var s string
	_ = json.Unmarshal(b, &s)
	return s
}

// collect walks src and returns its entries by snapshot path ("/" + Path)
// and the sorted "path type" lines restic ls would print, sockets left
// out as restic skips them.
func collect(t *testing.T, src sources.Source, opts sources.WalkOptions) (map[string]*sources.Entry, []string) {
	t.Helper()
	v := &collector{entries: map[string]*sources.Entry{}}
	if opts.OnError == nil {
		opts.OnError = func(path string, err error) error {
			t.Errorf("OnError(%q, %v)", path, err)
			return nil
		}
	}
	if err := src.Walk(context.Background(), opts, v); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	var lines []string
	for p, e := range v.entries {
		if e.Type != sources.Socket {
			lines = append(lines, lossy(p)+" "+e.Type.String())
		}
	}
	slices.Sort(lines)
	return v.entries, lines
}

type collector struct {
	mu      sync.Mutex
	entries map[string]*sources.Entry
}

func (c *collector) Visit(_ context.Context, e *sources.Entry) error {
	cp := *e
	c.mu.Lock()
	c.entries["/"+e.Path] = &cp
	c.mu.Unlock()
	return nil
}

func (c *collector) LeaveDir(context.Context, string) error { return nil }
