package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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

// nodeDiff is one node that differs between two trees.
type nodeDiff struct {
	path   string   // in the snapshot, "/a/b"
	typ    string   // the node's type in the first tree
	fields []string // the JSON fields that differ, other than subtree
	desc   string
}

// treeDiffs walks two tree blobs side by side with restic and returns
// every node that differs in more than its subtree ID (a directory whose
// subtree differs is descended into instead), for readable failures and
// for tests that allow some differences.
func treeDiffs(t *testing.T, o *oracle.Restic, dir, path, a, b string) []nodeDiff {
	t.Helper()
	if a == b {
		return nil
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
	if len(na) != len(nb) {
		return []nodeDiff{{path: path + "/", fields: []string{"(nodes)"}, desc: fmt.Sprintf("in %q: %d nodes and %d nodes", path+"/", len(na), len(nb))}}
	}
	var out []nodeDiff
	for i := range na {
		if bytes.Equal(na[i], nb[i]) {
			continue
		}
		var x, y map[string]json.RawMessage
		if json.Unmarshal(na[i], &x) != nil || json.Unmarshal(nb[i], &y) != nil {
			t.Fatalf("decode nodes %s and %s", na[i], nb[i])
		}
		var name, typ string
		_ = json.Unmarshal(x["name"], &name)
		_ = json.Unmarshal(x["type"], &typ)
		p := path + "/" + name
		var fields []string
		for k := range x {
			if !bytes.Equal(x[k], y[k]) && k != "subtree" {
				fields = append(fields, k)
			}
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				fields = append(fields, k)
			}
		}
		slices.Sort(fields)
		if len(fields) > 0 {
			out = append(out, nodeDiff{path: p, typ: typ, fields: fields, desc: fmt.Sprintf("%q: %s", p, fieldDiff(na[i], nb[i]))})
		}
		if !slices.Contains(fields, "name") && !bytes.Equal(x["subtree"], y["subtree"]) && x["subtree"] != nil && y["subtree"] != nil {
			var sa, sb string
			_ = json.Unmarshal(x["subtree"], &sa)
			_ = json.Unmarshal(y["subtree"], &sb)
			out = append(out, treeDiffs(t, o, dir, p, sa, sb)...)
		}
	}
	return out
}

// treeDiff describes the first nodes in which two trees differ.
func treeDiff(t *testing.T, o *oracle.Restic, dir, a, b string) string {
	t.Helper()
	var lines []string
	for i, d := range treeDiffs(t, o, dir, "", a, b) {
		if i == 5 {
			lines = append(lines, "…")
			break
		}
		lines = append(lines, d.desc)
	}
	return strings.Join(lines, "\n")
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
			what, resticTree, cairnTree, treeDiff(t, o, dir, resticTree, cairnTree))
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
	t.Parallel()
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

// The other direction of the identity proof: after restic's backup of the
// awkward tree into a repository restic made, cairn's backup of the same
// tree — with restic's snapshot as parent, and with --force — stores no
// data and no tree blob and arrives at restic's root tree.
func TestCompatResticBackupIsCairnBackup(t *testing.T) {
	t.Parallel()
	m := compatFixture(t, 50)
	dir := filepath.Join(t.TempDir(), "repo")
	o := oracleFor(t)
	o.Init(dir, 2)
	first := o.InDir(m.Root).Backup(dir, []string{"."}, "--host", compatHost)
	resticTree := snapshotTree(t, o, dir, first.SnapshotID)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir).inDir(m.Root)
	for _, extra := range [][]string{{"--parent", first.SnapshotID}, {"--parent", first.SnapshotID, "--force"}} {
		sum := backupJSON(t, r, append(append([]string{"--host", compatHost}, extra...), ".")...)
		what := "cairn backup " + strings.Join(extra, " ")
		if sum["data_blobs"].(float64) != 0 || sum["tree_blobs"].(float64) != 0 || sum["data_added"].(float64) != 0 {
			t.Errorf("%s after restic's stored something: %v", what, sum)
		}
		assertSameTree(t, o, dir, what, snapshotTree(t, o, dir, sum["snapshot_id"].(string)), resticTree)
	}
	o.MustCheck(dir, false)
}

// Excludes select what restic selects: for each set of restic's exclude
// options, restic's backup with the same options after cairn's (--force,
// every file read) stores nothing and arrives at cairn's tree, and both
// snapshots record the same exclude patterns.
func TestCompatExcludesLikeRestic(t *testing.T) {
	t.Parallel()
	m := compatFixture(t, 30)
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir).inDir(m.Root)
	o := oracleFor(t)
	excludeFile := writeFile(t, "# a comment\n\nf0000*\n*.txt\n!keep.txt\n")
	all := backupJSON(t, r, "--host", compatHost, "--dry-run", ".")["total_files_processed"].(float64)
	for i, args := range [][]string{
		{"--exclude", "*.log", "--exclude", "skipdir"},
		{"--iexclude", "*.LOG", "--exclude-caches", "--exclude-if-present", ".nobackup"},
		{"--exclude-larger-than", "1M", "--exclude-file", excludeFile},
		{"--exclude", "deep/d01/d02", "--exclude", "names", "--iexclude-file", excludeFile, "--exclude", "!names/*"},
		{"--exclude-if-present", "CACHEDIR.TAG:Signature: 8a477f597d28d172789f06886806bc55"},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			common := append([]string{"--host", compatHost}, args...)
			sum := backupJSON(t, r, append(common, ".")...)
			cairnID := sum["snapshot_id"].(string)
			s := o.InDir(m.Root).Backup(dir, []string{"."}, append(common, "--force")...)
			if s.DataBlobs != 0 || s.TreeBlobs != 0 || len(s.Errors) != 0 {
				t.Errorf("restic backup %v after cairn's stored %d data and %d tree blobs (errors %v)", args, s.DataBlobs, s.TreeBlobs, s.Errors)
			}
			if n := sum["total_files_processed"].(float64); n != float64(s.TotalFilesProcessed) || n >= all {
				t.Errorf("%v: cairn backed up %v files, restic %d, of %v", args, n, s.TotalFilesProcessed, all)
			}
			sns := o.Snapshots(dir, cairnID, s.SnapshotID)
			if len(sns) != 2 || !slices.Equal(sns[0].Excludes, sns[1].Excludes) {
				t.Errorf("%v: snapshots record excludes differently: %+v", args, sns)
			}
			assertSameTree(t, o, dir, fmt.Sprintf("restic backup %v", args), snapshotTree(t, o, dir, cairnID), snapshotTree(t, o, dir, s.SnapshotID))
		})
	}
}

// With --with-atime both tools record access times. Both read files and
// list directories without moving access times (O_NOATIME), so restic's
// restore brings the access times back, and restic's backup of the tree
// with access times afterwards stores no data and arrives at cairn's trees
// except for the symlinks: reading a link (both tools must, after lstat)
// moves its access time, and nothing prevents that, so any second backup
// with access times, restic's after restic's too, records new ones.
func TestCompatWithAtime(t *testing.T) {
	t.Parallel()
	m := compatFixture(t, 20)
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	o := oracleFor(t)
	sum := backupJSON(t, r.inDir(m.Root), "--host", compatHost, "--with-atime", ".")
	cairnID := sum["snapshot_id"].(string)
	o.MustCheck(dir, true)

	// Before anything else lists the source's directories (testtree's
	// comparison does, and moves their access times).
	cairnTree := snapshotTree(t, o, dir, cairnID)
	for _, extra := range [][]string{{"--parent", cairnID}, {"--parent", cairnID, "--force"}} {
		s := o.InDir(m.Root).Backup(dir, []string{"."}, append([]string{"--host", compatHost, "--with-atime"}, extra...)...)
		what := "restic backup --with-atime " + strings.Join(extra, " ")
		if s.DataBlobs != 0 || s.FilesChanged != 0 {
			t.Errorf("%s: %+v", what, s)
		}
		diffs := treeDiffs(t, o, dir, "", snapshotTree(t, o, dir, s.SnapshotID), cairnTree)
		for _, d := range diffs {
			if d.typ != "symlink" || !slices.Equal(d.fields, []string{"atime"}) {
				t.Errorf("%s: restic's tree differs from cairn's (restic's first): %s", what, d.desc)
			}
		}
		t.Logf("%s: %d symlinks with a new access time", what, len(diffs))
	}

	target := compatNewTarget(t)
	o.Restore(dir, cairnID, target)
	testtree.Compare(t, m.Root, target, testtree.CompareOptions{IgnoreRoot: true, IgnoreHardLinks: true, Atime: true})
}

// Absolute targets put every directory above them into the snapshot with
// its real metadata (restic's layout). cairn's backup of two directories
// of the same name and a single file, followed by restic's backup of the
// same targets with cairn's snapshot as parent, gives identical trees
// except for the times of those directories above the targets: /tmp and
// the test's temporary directories change while the test runs (other
// processes, new temporary directories), and then restic records the new
// times, as it would after a restic backup.
func TestCompatAbsoluteTargets(t *testing.T) {
	m := compatFixture(t, 5)
	other := filepath.Join(t.TempDir(), "elsewhere", "src")
	writeFiles(t, other, map[string]string{"same-name.txt": "a second target called src\n"})
	single := filepath.Join(t.TempDir(), "single.txt")
	writeFiles(t, filepath.Dir(single), map[string]string{"single.txt": "a file given as a target\n"})
	targets := []string{m.Root, other, single}

	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	o := oracleFor(t)
	sum := backupJSON(t, r, append([]string{"--host", compatHost}, targets...)...)
	cairnID := sum["snapshot_id"].(string)
	s := o.Backup(dir, targets, "--host", compatHost, "--parent", cairnID)
	if s.DataBlobs != 0 || s.FilesNew != 0 || s.FilesChanged != 0 || len(s.Errors) != 0 {
		t.Errorf("restic backup after cairn's: %+v", s)
	}
	cairnSn, resticSn := o.Snapshots(dir, cairnID)[0], o.Snapshots(dir, s.SnapshotID)[0]
	if !slices.Equal(cairnSn.Paths, resticSn.Paths) {
		t.Errorf("snapshot paths: cairn %q, restic %q", cairnSn.Paths, resticSn.Paths)
	}
	above := func(p string) bool {
		for _, tg := range targets {
			if strings.HasPrefix(tg, p+"/") {
				return true
			}
		}
		return false
	}
	diffs := treeDiffs(t, o, dir, "", resticSn.Tree, cairnSn.Tree)
	for _, d := range diffs {
		times := !slices.ContainsFunc(d.fields, func(f string) bool { return f != "mtime" && f != "atime" && f != "ctime" })
		if !above(d.path) || !times {
			t.Errorf("restic's tree differs from cairn's (restic's first): %s", d.desc)
		}
	}
	t.Logf("%d directories above the targets changed their times between the backups", len(diffs))
	o.MustCheck(dir, true)
}

// keyIDPattern finds the ID in "saved new key with ID …".
var keyIDPattern = regexp.MustCompile(`saved new key with ID ([0-9a-f]{64})`)

// Bullet 3: keys made by either tool open with the other, on a repository
// made by restic and on one made by `cairn init`, each with the real
// (calibrated, not test) scrypt parameters of the tool that made the key.
func TestCompatKeysBothWays(t *testing.T) {
	t.Parallel()
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

// changeFixture changes a fixture after its first backup the ways a second
// backup must notice: new content (same and other size), an appended
// multi-chunk file, a new mtime on unchanged content, a chmod (only the
// ctime tells), a new file and a removed one. It returns how many files
// are new and changed by restic's rules; every other file is unchanged.
func changeFixture(t *testing.T, root string) (newFiles, changed int) {
	t.Helper()
	p := func(s string) string { return filepath.Join(root, s) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("files/small.txt"), []byte("a changed text file, longer than before\n"), 0o644))
	f, err := os.OpenFile(p("files/random.bin"), os.O_WRONLY|os.O_APPEND, 0)
	must(err)
	tail := make([]byte, 300<<10)
	for i := range tail {
		tail[i] = byte(i*7 + i>>9)
	}
	_, err = f.Write(tail)
	must(err)
	must(f.Close())
	when := time.Date(2025, 5, 6, 7, 8, 9, 10, time.UTC)
	must(os.Chtimes(p("files/text.log"), when, when))
	must(os.Chmod(p("modes/0600"), 0o640))
	must(os.WriteFile(p("files/new.txt"), []byte("added after the first backup\n"), 0o644))
	must(os.Remove(p("files/tiny")))
	return 1, 4
}

// Bullet 2: repositories written by restic — version 1, and version 2
// with compression off, auto and max — take a cairn backup of a changed
// tree: cairn picks restic's snapshot as parent, keeps the unchanged
// files, stores only the new data, `restic check --read-data` stays clean,
// restic restores cairn's snapshot identically, and restic's own backup
// of the same tree afterwards finds nothing to add. (That cairn restores
// such repositories identically is TestRestoreResticRepositories in
// repo/restore; that it skips unchanged files without opening them is
// TestBackupIntoResticRepository in repo/backup.)
func TestCompatBackupIntoResticRepositories(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		version     int
		compression string
	}{{1, ""}, {2, "off"}, {2, "auto"}, {2, "max"}} {
		t.Run(strings.TrimSuffix(fmt.Sprintf("v%d-%s", c.version, c.compression), "-"), func(t *testing.T) {
			m := compatFixture(t, 20)
			src := m.Root
			dir := filepath.Join(t.TempDir(), "repo")
			o := oracleFor(t)
			o.Init(dir, c.version)
			args := []string{"--host", compatHost}
			if c.compression != "" {
				args = append(args, "--compression", c.compression)
			}
			first := o.InDir(src).Backup(dir, []string{"."}, args...)
			newFiles, changed := changeFixture(t, src)

			r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
			sum := backupJSON(t, r.inDir(src), append(args, ".")...)
			total := int(first.TotalFilesProcessed) + newFiles - 1 // files/tiny is gone
			if got := [3]float64{sum["files_new"].(float64), sum["files_changed"].(float64), sum["files_unmodified"].(float64)}; got != [3]float64{float64(newFiles), float64(changed), float64(total - newFiles - changed)} {
				t.Errorf("cairn backup over restic's snapshot: new, changed, unmodified files %v, want %d, %d, %d", got, newFiles, changed, total-newFiles-changed)
			}
			// small.txt, new.txt and the end of random.bin; no more.
			if n := sum["data_blobs"].(float64); n < 3 || n > 5 {
				t.Errorf("cairn backup stored %v data blobs, want 3 to 5", n)
			}
			t.Logf("cairn backup into restic's repository: %d files, %v new, %v changed, %v data blobs", total, sum["files_new"], sum["files_changed"], sum["data_blobs"])
			cairnID := sum["snapshot_id"].(string)
			if sns := o.Snapshots(dir, cairnID); len(sns) != 1 || sns[0].Parent != first.SnapshotID {
				t.Errorf("cairn's snapshot %+v, want parent %s", sns, first.SnapshotID)
			}
			o.MustCheck(dir, true)

			target := compatNewTarget(t)
			o.Restore(dir, cairnID, target)
			compareResticRestore(t, src, target, nil)

			again := o.InDir(src).Backup(dir, []string{"."}, append(args, "--force")...)
			if again.DataBlobs != 0 || again.TreeBlobs != 0 {
				t.Errorf("restic backup --force after cairn's added %d data and %d tree blobs", again.DataBlobs, again.TreeBlobs)
			}
			assertSameTree(t, o, dir, "restic backup --force", snapshotTree(t, o, dir, cairnID), snapshotTree(t, o, dir, again.SnapshotID))
			compareSnapshotFiles(t, o, dir, cairnID, again.SnapshotID)
		})
	}
}

// compareSnapshotFiles compares two stored snapshots (cairn's and
// restic's of the same paths): the same fields, and the same values except
// for times, tree, summary counts and the program version. The parent is
// left out (restic's --force records none).
func compareSnapshotFiles(t *testing.T, o *oracle.Restic, dir, cairnID, resticID string) {
	t.Helper()
	var mine, theirs map[string]any
	o.CatJSON(dir, &mine, "snapshot", cairnID)
	o.CatJSON(dir, &theirs, "snapshot", resticID)
	delete(mine, "parent")
	delete(theirs, "parent")
	km, kt := keysOf(mine), keysOf(theirs)
	for _, k := range km {
		if !slices.Contains(kt, k) {
			t.Errorf("cairn's snapshot has the field %s, restic's does not", k)
		}
	}
	for _, k := range kt {
		if !slices.Contains(km, k) {
			t.Errorf("restic's snapshot has the field %s, cairn's does not", k)
		}
	}
	for _, k := range []string{"paths", "hostname", "username", "uid", "gid", "tags", "excludes"} {
		if a, b := fmt.Sprint(mine[k]), fmt.Sprint(theirs[k]); a != b {
			t.Errorf("snapshot field %s: cairn %s, restic %s", k, a, b)
		}
	}
	if v, _ := mine["program_version"].(string); !strings.HasPrefix(v, "cairn ") {
		t.Errorf("cairn's program_version %q", v)
	}
}

// writeBigFiles writes size bytes of random data and size/4 of repetitive
// text under dir, deterministically: enough for several packs of the
// smallest size, and something for compression to work on.
func writeBigFiles(t *testing.T, dir string, size int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	random := make([]byte, size)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var text bytes.Buffer
	for i := 0; text.Len() < size/4; i++ {
		fmt.Fprintf(&text, "line %d of a log that compresses well, level=%d\n", i, i%7)
	}
	writeFiles(t, dir, map[string]string{"random.bin": string(random), "log.txt": text.String()})
}

// dataPacks returns the size of every pack holding data blobs, and whether
// any data blob and any tree blob is stored compressed, from restic's view
// of the index.
func dataPacks(t *testing.T, o *oracle.Restic, dir string) (sizes []int64, dataCompressed, treeCompressed, treeUncompressed bool) {
	t.Helper()
	for _, id := range o.List(dir, "index") {
		for _, p := range o.CatIndex(dir, id).Packs {
			isData := false
			for _, b := range p.Blobs {
				switch {
				case b.Type == "data":
					isData = true
					dataCompressed = dataCompressed || b.UncompressedLength != 0
				case b.UncompressedLength != 0:
					treeCompressed = true
				default:
					treeUncompressed = true
				}
			}
			if isData {
				fi, err := os.Stat(filepath.Join(dir, "data", p.ID[:2], p.ID))
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, fi.Size())
			}
		}
	}
	return sizes, dataCompressed, treeCompressed, treeUncompressed
}

// Bullet 4: `cairn backup --compression off|max|auto|fastest|better` with
// the smallest pack size into a version 2 repository, and a backup into a
// version 1 repository made by `cairn init`, pass `restic check
// --read-data` and restore identically with restic; data blobs are
// compressed only when asked for, trees always in version 2 (as restic
// does) and never in version 1, and packs are cut at the requested size.
func TestCompatCompressionAndPackSize(t *testing.T) {
	t.Parallel()
	m := compatFixture(t, 20)
	big := t.TempDir()
	const bigSize = 20 << 20
	writeBigFiles(t, big, bigSize)
	packed := map[string]float64{}
	// "v1" is a version 1 repository made by `cairn init`: nothing may be
	// compressed there.
	for _, compression := range []string{"off", "max", "auto", "fastest", "better", "v1"} {
		t.Run(compression, func(t *testing.T) {
			var dir string
			args := []string{"backup", "--json", "--pack-size", "4"}
			if compression == "v1" {
				dir = filepath.Join(t.TempDir(), "repo")
				newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir).ok("init", "--repository-version", "1")
			} else {
				dir = newRepo(t)
				args = append(args, "--compression", compression)
			}
			r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
			o := oracleFor(t)
			sum := backupJSON(t, r, append(args[2:], m.Root, big)...)
			packed[compression] = sum["data_added_packed"].(float64)
			o.MustCheck(dir, true)

			sizes, dataZ, treeZ, treeRaw := dataPacks(t, o, dir)
			t.Logf("--compression %s: %v bytes of data packed, data packs %v", compression, packed[compression], sizes)
			if v1 := compression == "v1"; dataZ != (compression != "off" && !v1) || treeZ == v1 || treeRaw != v1 {
				t.Errorf("--compression %s: compressed data blobs %v, compressed trees %v, uncompressed trees %v", compression, dataZ, treeZ, treeRaw)
			}
			// A pack is closed once it reaches 4 MiB, so it ends below 4
			// MiB plus one chunk (8 MiB at most); only the packs still open
			// at the end (two per blob type) may stay smaller.
			const target, maxChunk = 4 << 20, 8 << 20
			small := 0
			for _, s := range sizes {
				if s > target+maxChunk+64<<10 {
					t.Errorf("data pack of %d bytes with --pack-size 4", s)
				}
				if s < target {
					small++
				}
			}
			if len(sizes) < bigSize/(target+maxChunk) || small > 2 {
				t.Errorf("data pack sizes %v: want several of at least 4 MiB", sizes)
			}

			target2 := compatNewTarget(t)
			o.Restore(dir, "latest", target2)
			compareResticRestore(t, m.Root, filepath.Join(target2, m.Root), nil)
			if d, err := testtree.Diff(big, filepath.Join(target2, big), testtree.CompareOptions{IgnoreRoot: true}); err != nil || len(d) > 0 {
				t.Errorf("restic restore of the big files: %v %v", d, err)
			}
		})
	}
	if packed["max"] >= packed["off"] {
		t.Errorf("data added to the repository: %v bytes with max, %v without compression", packed["max"], packed["off"])
	}
}
