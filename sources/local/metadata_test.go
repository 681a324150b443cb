//go:build linux

package local_test

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/local"
)

// TestMetadataAgainstRestic backs up the fixture with restic and checks
// that every node restic stores matches this source's entry, field by
// field, after the backup's own rule (atime = mtime): the layout, types,
// modes, times, owners and names, inodes, devices, links, symlink targets
// and xattrs in restic's order.
func TestMetadataAgainstRestic(t *testing.T) {
	m := testtree.Build(t, t.TempDir()+"/fixture", testtree.Options{SmallFiles: 70})
	other := t.TempDir()
	makeFiles(t, other, "second-target")
	targets := []string{m.Root, other + "/second-target", m.Root + "/names"}

	r := newRestic(t)
	id, err := r.backup("/", targets...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.ls(id)
	if err != nil {
		t.Fatal(err)
	}

	src, err := local.New(targets, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if paths := src.Info().Paths; !slices.Equal(paths, l.paths) {
		t.Errorf("Info().Paths = %q, restic's snapshot has %q", paths, l.paths)
	}
	entries, lines := collect(t, src, sources.WalkOptions{})
	if !slices.Equal(lines, l.lines) {
		t.Errorf("tree differs from restic's:\n%s", lineDiff(lines, l.lines))
	}

	// The shared temporary directory changes while the test runs (other
	// tests, other programs): its times cannot match between two walks.
	shared := map[string]bool{}
	for p := os.TempDir(); p != "/"; p = filepath.Dir(p) {
		shared[p] = true
	}
	byLossy := map[string]*sources.Entry{}
	for p, e := range entries {
		byLossy[lossy(p)] = e
	}
	for p, n := range l.nodes {
		e := byLossy[p]
		if e == nil {
			continue // reported above
		}
		check := func(what string, got, want any) {
			t.Helper()
			if got != want {
				t.Errorf("%q: %s %v, restic %v", p, what, got, want)
			}
		}
		check("type", e.Type.String(), n.Type)
		check("mode", uint32(e.Mode), n.Mode)
		if !shared[p] {
			check("mtime", e.ModTime.UnixNano(), n.MTime.UnixNano())
			check("atime (= mtime in restic)", e.ModTime.UnixNano(), n.ATime.UnixNano())
			check("ctime", e.ChangeTime.UnixNano(), n.CTime.UnixNano())
		}
		check("uid", e.UID, n.UID)
		check("gid", e.GID, n.GID)
		check("inode", e.Inode, n.Inode)
		if e.Type == sources.File {
			check("size", e.Size, n.Size)
		}
	}

	// The tree blobs hold what ls does not show. Check the directories
	// with the most unusual entries, node by node.
	for _, dir := range []string{"", "special", "xattrs", "hardlinks", "owners", "links", "names", "times", "modes"} {
		snapDir := "/" + m.Root[1:]
		if dir != "" {
			snapDir += "/" + dir
		}
		for _, n := range r.tree(id, snapDir) {
			name, err := strconv.Unquote(`"` + n.Name + `"`)
			if err != nil {
				t.Fatalf("restic node name %q: %v", n.Name, err)
			}
			p := path.Join(snapDir, name)
			e := entries[p]
			if e == nil {
				t.Errorf("%q: in restic's tree, not visited", p)
				continue
			}
			compareNode(t, p, e, n)
		}
	}
}

// compareNode compares what restic put in a tree node with the entry.
func compareNode(t *testing.T, p string, e *sources.Entry, n treeNode) {
	t.Helper()
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%q: %s %v, restic %v", p, what, got, want)
		}
	}
	check("user", e.User, n.User)
	check("group", e.Group, n.Group)
	check("device_id", e.DeviceID, n.DeviceID)
	links := e.Links
	if e.Type == sources.Dir || e.Type == sources.FIFO {
		links = 0 // restic leaves links out for these
	}
	check("links", links, n.Links)
	target := n.LinkTarget
	if n.LinkTargetRaw != nil {
		target = string(n.LinkTargetRaw)
	}
	check("link target", e.LinkTarget, target)
	check("device", e.Device, n.Device)
	if len(e.Xattrs) != len(n.Xattrs) {
		t.Errorf("%q: %d xattrs, restic %d", p, len(e.Xattrs), len(n.Xattrs))
		return
	}
	for i, x := range n.Xattrs {
		if e.Xattrs[i].Name != x.Name || !bytes.Equal(e.Xattrs[i].Value, x.Value) {
			t.Errorf("%q: xattr %d is %q=%q, restic %q=%q", p, i, e.Xattrs[i].Name, e.Xattrs[i].Value, x.Name, x.Value)
		}
	}
}

// lineDiff shows lines only in got (+) or only in want (-).
func lineDiff(got, want []string) string {
	var out bytes.Buffer
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok {
			out.WriteString("+ " + strconv.Quote(g) + "\n")
		}
	}
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok {
			out.WriteString("- " + strconv.Quote(w) + "\n")
		}
	}
	return out.String()
}
