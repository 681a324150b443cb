package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testtree"
)

// The end-to-end proof that cairn and restic 0.19.1 write the same
// repository format (issue 2, item 7). Every test here runs the real
// restic against repositories written by the cairn binary and the other
// way round, on the awkward fixture tree of internal/testtree.

// compatHost is the host name every backup in these tests records, so
// that both tools pick each other's snapshots as parents.
const compatHost = "compat"

// compatFixture builds the awkward tree in a fresh directory and returns
// its manifest. Privileged runs must get everything root can make (device
// nodes, foreign owners) and every run must get user xattrs including an
// empty value, or the proof would quietly shrink.
func compatFixture(t *testing.T, smallFiles int) *testtree.Manifest {
	t.Helper()
	base := t.TempDir()
	testtree.MakeRemovable(t, base)
	req := testtree.Features{Xattrs: true}
	if os.Geteuid() == 0 {
		req.Devices, req.Ownership = true, true
	}
	m := testtree.Build(t, filepath.Join(base, "src"), testtree.Options{SmallFiles: smallFiles, Require: req})
	f, ok := m.Lookup("xattrs/file")
	empty := false
	if ok {
		for _, x := range f.Xattrs {
			empty = empty || len(x.Value) == 0
		}
	}
	if !empty {
		t.Fatalf("fixture has no empty xattr value on xattrs/file: %+v", f)
	}
	t.Logf("fixture features: %+v (privileged %v)", m.Features, m.Privileged)
	return m
}

// inDir returns a copy of r that runs in dir (for "backup .").
func (r *runner) inDir(dir string) *runner {
	c := *r
	c.dir = dir
	return &c
}

// compatNewTarget returns a path for a restore that the test can delete
// even when it holds read-only directories.
func compatNewTarget(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	testtree.MakeRemovable(t, base)
	return filepath.Join(base, "target")
}

// snapshotTree returns the root tree ID restic reports for a snapshot.
func snapshotTree(t *testing.T, o *oracle.Restic, dir, id string) string {
	t.Helper()
	sns := o.Snapshots(dir, id)
	if len(sns) != 1 {
		t.Fatalf("restic snapshots %s: %d snapshots", id, len(sns))
	}
	return sns[0].Tree
}

// treeDiff walks two tree blobs side by side with restic and describes the
// first node that differs, for a readable failure when two trees that
// should be identical are not.
func treeDiff(t *testing.T, o *oracle.Restic, dir, path, a, b string) string {
	t.Helper()
	if a == b {
		return ""
	}
	raw := func(id string) []json.RawMessage {
		var tr struct {
			Nodes []json.RawMessage `json:"nodes"`
		}
		if err := json.Unmarshal(o.Cat(dir, "blob", id), &tr); err != nil {
			t.Fatalf("decode tree %s: %v", id, err)
		}
		return tr.Nodes
	}
	na, nb := raw(a), raw(b)
	for i := range min(len(na), len(nb)) {
		if bytes.Equal(na[i], nb[i]) {
			continue
		}
		var x, y struct {
			Name    string `json:"name"`
			Subtree string `json:"subtree"`
		}
		_ = json.Unmarshal(na[i], &x)
		_ = json.Unmarshal(nb[i], &y)
		if x.Name == y.Name && x.Subtree != "" && y.Subtree != "" && x.Subtree != y.Subtree {
			// The directory's own node differs only in its subtree when
			// the difference is further down; otherwise report it here.
			xs := strings.Replace(string(na[i]), x.Subtree, "", 1)
			ys := strings.Replace(string(nb[i]), y.Subtree, "", 1)
			if xs == ys {
				return treeDiff(t, o, dir, path+"/"+x.Name, x.Subtree, y.Subtree)
			}
		}
		return fmt.Sprintf("in %q node %d (%s): %s", path+"/", i, x.Name, fieldDiff(na[i], nb[i]))
	}
	return fmt.Sprintf("in %q: %d nodes and %d nodes", path+"/", len(na), len(nb))
}

// fieldDiff lists the JSON fields in which two nodes differ, values
// shortened (an xattr list can be kilobytes long).
func fieldDiff(a, b json.RawMessage) string {
	var x, y map[string]json.RawMessage
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return fmt.Sprintf("%.300s vs %.300s", a, b)
	}
	short := func(v json.RawMessage) string {
		if v == nil {
			return "(absent)"
		}
		return fmt.Sprintf("%.300s", v)
	}
	var out []string
	for k := range x {
		if !bytes.Equal(x[k], y[k]) {
			out = append(out, fmt.Sprintf("%s: %s vs %s", k, short(x[k]), short(y[k])))
		}
	}
	for k := range y {
		if _, ok := x[k]; !ok {
			out = append(out, fmt.Sprintf("%s: (absent) vs %s", k, short(y[k])))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// assertSameTree fails the test when restic's snapshot got a different root
// tree than cairn's, naming the first differing node.
func assertSameTree(t *testing.T, o *oracle.Restic, dir, what, cairnTree, resticTree string) {
	t.Helper()
	if cairnTree != resticTree {
		t.Errorf("%s: restic's root tree %.10s differs from cairn's %.10s (restic's first, cairn's second)\n%s",
			what, resticTree, cairnTree, treeDiff(t, o, dir, "", resticTree, cairnTree))
	}
}

// compareResticRestore compares a restic restore with the source tree:
// everything, except that restic does not link hard-linked symlinks again
// (each name becomes its own symlink), and except the lossy paths.
func compareResticRestore(t *testing.T, src, target string, lossy map[string]bool) {
	t.Helper()
	opts := testtree.CompareOptions{IgnoreRoot: true, IgnoreHardLinks: true, Ignore: func(p string) bool { return lossy[p] }}
	testtree.Compare(t, src, target, opts)
	opts.IgnoreHardLinks = false
	opts.Ignore = func(p string) bool { return lossy[p] || strings.HasPrefix(p, "hardlinks/symlink") }
	testtree.Compare(t, src, target, opts)
}

// lossyTimes returns the fixture entries whose modification time falls in
// a local mean time of loc with an offset that is not whole minutes
// (Asia/Kolkata in 1901: +05:21:10). RFC 3339 has no seconds in offsets,
// so restic stores such a time off by those seconds: its own restore and
// its own change detection see another time. cairn writes the same bytes
// on purpose (trees must deduplicate), so these entries are expected to
// come back shifted and to be re-read by restic.
func lossyTimes(m *testtree.Manifest, loc *time.Location) (paths map[string]bool, files int) {
	paths = map[string]bool{}
	for _, f := range m.Files {
		if _, off := f.ModTime.In(loc).Zone(); off%60 != 0 {
			paths[f.Path] = true
			if f.IsRegular() {
				files++
			}
		}
	}
	return paths, files
}

// Bullet 1, the tree byte-identity proof: cairn init and backup of the
// awkward tree pass `restic check --read-data`, `restic restore` gives the
// tree back identically (content, modes, times, links, xattrs, owners),
// and a restic backup of the same tree afterwards — with cairn's snapshot
// as parent, and again with --force so that every file is read and every
// tree rebuilt — adds no data blob and no tree blob: restic arrives at
// exactly cairn's root tree. Node times are rendered in the local zone, so
// the proof runs in three: UTC, a half-hour zone with daylight saving time
// (Australia/Adelaide), and one whose 1901 offset has seconds
// (Asia/Kolkata, see lossyTimes).
func TestCompatCairnBackupIsResticBackup(t *testing.T) {
	m := compatFixture(t, 50)
	src := m.Root
	for _, tz := range []string{"UTC", "Australia/Adelaide", "Asia/Kolkata"} {
		t.Run(strings.ReplaceAll(tz, "/", "-"), func(t *testing.T) {
			loc, err := time.LoadLocation(tz)
			if err != nil {
				t.Fatalf("zone %s: %v (install tzdata)", tz, err)
			}
			lossy, lossyFiles := lossyTimes(m, loc)
			if len(lossy) > 0 {
				t.Logf("times restic cannot store exactly in %s: %v", tz, lossy)
			}
			dir := filepath.Join(t.TempDir(), "repo")
			r := newRunner(t).with("TZ="+tz, "RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
			o := oracleFor(t).WithEnv("TZ=" + tz)

			// A real `cairn init`: restic must also open a key made with
			// cairn's calibrated scrypt parameters.
			if res := r.ok("init"); !strings.Contains(res.stdout, "created restic repository") {
				t.Errorf("init output:\n%s", res)
			}
			sum := backupJSON(t, r.inDir(src), "--host", compatHost, ".")
			cairnID, _ := sum["snapshot_id"].(string)
			if cairnID == "" || sum["files_new"].(float64) == 0 || sum["data_blobs"].(float64) == 0 {
				t.Fatalf("cairn backup summary: %v", sum)
			}
			o.MustCheck(dir, true)

			target := compatNewTarget(t)
			o.Restore(dir, cairnID, target)
			compareResticRestore(t, src, target, lossy)

			cairnTree := snapshotTree(t, o, dir, cairnID)
			ro := o.InDir(src)
			for _, extra := range [][]string{{"--parent", cairnID}, {"--parent", cairnID, "--force"}} {
				args := append([]string{"--host", compatHost}, extra...)
				s := ro.Backup(dir, []string{"."}, args...)
				what := "restic backup " + strings.Join(extra, " ")
				if s.DataBlobs != 0 || s.TreeBlobs != 0 || s.DataAdded != 0 {
					t.Errorf("%s added %d data blobs, %d tree blobs, %d bytes; want none", what, s.DataBlobs, s.TreeBlobs, s.DataAdded)
				}
				if s.DirsChanged != 0 || len(s.Errors) != 0 {
					t.Errorf("%s saw changes: %+v", what, s)
				}
				// With the parent, restic must find every file unchanged
				// by its metadata (all but the lossy ones); --force reads
				// and counts them all as new.
				if extra[len(extra)-1] != "--force" && (s.FilesNew != 0 || s.DirsNew != 0 || s.FilesChanged != uint(lossyFiles) || s.FilesUnmodified == 0) {
					t.Errorf("%s: restic did not take cairn's nodes as unchanged (%d lossy files): %+v", what, lossyFiles, s)
				}
				assertSameTree(t, o, dir, what, cairnTree, snapshotTree(t, o, dir, s.SnapshotID))
			}
		})
	}
}

// keyIDPattern finds the ID in "saved new key with ID …".
var keyIDPattern = regexp.MustCompile(`saved new key with ID ([0-9a-f]{64})`)

// Bullet 3: keys made by either tool open with the other, on a repository
// made by restic and on one made by `cairn init`, each with the real
// (calibrated, not test) scrypt parameters of the tool that made the key.
func TestCompatKeysBothWays(t *testing.T) {
	for _, maker := range []string{"restic", "cairn"} {
		t.Run("init-by-"+maker, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			o := oracleFor(t)
			r := newRunner(t).with("RESTIC_REPOSITORY=" + dir)
			if maker == "restic" {
				o.Init(dir, 2)
			} else {
				r.with("RESTIC_PASSWORD=" + testPassword).ok("init")
			}

			// restic adds a key; cairn opens the repository with it and
			// knows it is the key in use.
			resticKey := o.KeyAdd(dir, "from restic", "--user", "rk", "--host", "rh")
			byRestic := r.with("RESTIC_PASSWORD=from restic")
			var keys []keyListJSON
			decode(t, byRestic.ok("key", "list", "--json").stdout, &keys)
			current := ""
			for _, k := range keys {
				if k.Current {
					current = k.ID
				}
			}
			if current != resticKey || len(keys) != 2 {
				t.Errorf("cairn with restic's new key: current key %q, want %q; keys %+v", current, resticKey, keys)
			}

			// cairn adds a key with the key restic made; restic opens the
			// repository with cairn's key and lists it as current.
			res := byRestic.ok("key", "add", "--new-password-file", writeFile(t, "from cairn\n"), "--user", "ck", "--host", "ch")
			mk := keyIDPattern.FindStringSubmatch(res.stdout)
			if mk == nil {
				t.Fatalf("cairn key add: %s", res)
			}
			found := false
			for _, k := range o.WithPassword("from cairn").KeyList(dir) {
				if k.ID == mk[1] {
					found = true
					if !k.Current || k.UserName != "ck" || k.HostName != "ch" {
						t.Errorf("restic lists cairn's key as %+v", k)
					}
				}
			}
			if !found {
				t.Errorf("restic does not list cairn's key %s", mk[1])
			}

			// Data written through one tool's key is read through the
			// other's.
			src := t.TempDir()
			writeFiles(t, src, map[string]string{"a.txt": "written with cairn's key\n"})
			backupJSON(t, r.with("RESTIC_PASSWORD=from cairn"), "--host", compatHost, src)
			out := o.WithPassword("from restic").MustRun(dir, "dump", "latest", filepath.Join(src, "a.txt")).Stdout
			if string(out) != "written with cairn's key\n" {
				t.Errorf("restic dump through restic's key: %q", out)
			}
			o.WithPassword("from cairn").MustCheck(dir, true)
		})
	}
}
