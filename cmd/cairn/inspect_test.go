package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

// inspectRepos are the repositories the tests of the read-only commands
// (stats, diff, find, dump) share: built once per test binary, because the
// commands only read them.
type inspectRepos struct {
	src string // the backed-up tree, as it was for the last snapshot
	// v2 holds three snapshots of src: restic's (host h1, tag a), restic's
	// after changes (host h2, tag b) and cairn's of the changed tree
	// (host h1, tag c), in that order of time.
	v2    string
	v2IDs [3]string
	v1    string // a version 1 repository with one restic snapshot
	v1ID  string
}

var (
	inspectOnce  sync.Once
	inspectFix   *inspectRepos
	inspectFails bool
)

// inspectFixture returns the shared repositories, building them on first
// use. They live next to the test binary's cairn, which TestMain removes.
func inspectFixture(t *testing.T) *inspectRepos {
	t.Helper()
	inspectOnce.Do(func() {
		inspectFails = true
		inspectFix = buildInspectRepos(t, filepath.Join(filepath.Dir(cairnBin), "inspect"))
		inspectFails = false
	})
	if inspectFails {
		t.Fatal("building the shared repositories failed in an earlier test")
	}
	return inspectFix
}

// initCheapRepo creates a repository of the given version with cheap key
// derivation, so that each of the many commands opening it is fast.
func initCheapRepo(t *testing.T, dir string, version uint) {
	t.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, testPassword, repo.InitOptions{Version: version, Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}

func buildInspectRepos(t *testing.T, base string) *inspectRepos {
	t.Helper()
	f := &inspectRepos{src: filepath.Join(base, "src"), v2: filepath.Join(base, "v2"), v1: filepath.Join(base, "v1")}
	testtree.Build(t, f.src, testtree.Options{SmallFiles: 20, Depth: 40})
	initCheapRepo(t, f.v2, 2)
	initCheapRepo(t, f.v1, 1)
	o := oracleFor(t)
	f.v1ID = o.Backup(f.v1, []string{f.src}, "--host", "h1", "--time", "2024-03-01 10:00:00").SnapshotID
	f.v2IDs[0] = o.Backup(f.v2, []string{f.src}, "--host", "h1", "--tag", "a", "--time", "2024-03-01 10:00:00").SnapshotID

	// Changes for diff to find: content, metadata only, type, removed
	// and added entries, and a file that is only touched.
	write := func(p, content string) {
		if err := os.WriteFile(filepath.Join(f.src, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("files/small.txt", "changed content\n")
	if err := os.Chmod(filepath.Join(f.src, "files/tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(f.src, "names/#hash"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(f.src, "excl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.src, "links/relative")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(f.src, "links/relative"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(f.src, "added/sub dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("added/sub dir/new file", "new\n")
	write("added/percent%d", "odd name\n")
	f.v2IDs[1] = o.Backup(f.v2, []string{f.src}, "--host", "h2", "--tag", "b", "--time", "2024-03-02 10:00:00").SnapshotID

	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+f.v2)
	var sum map[string]any
	for _, line := range strings.Split(r.ok("backup", "--json", "--host", "h1", "--tag", "c", "--time", "2024-03-03 10:00:00", f.src).stdout, "\n") {
		if strings.Contains(line, `"summary"`) {
			if err := json.Unmarshal([]byte(line), &sum); err != nil {
				t.Fatal(err)
			}
		}
	}
	id, _ := sum["snapshot_id"].(string)
	if len(id) != 64 {
		t.Fatalf("cairn backup printed no snapshot ID: %v", sum)
	}
	f.v2IDs[2] = id
	return f
}

// inspectRun runs the same command with cairn and restic on a repository.
type inspectRun struct {
	t    *testing.T
	repo string
	r    *runner
	o    *oracle.Restic
}

func newInspectRun(t *testing.T, repoDir string) *inspectRun {
	return &inspectRun{t: t, repo: repoDir, r: newRunner(t).with("RESTIC_PASSWORD=" + testPassword), o: oracleFor(t)}
}

// both runs args with cairn and with restic and returns both results;
// it fails the test when the exit codes differ. Both run with --no-lock:
// the commands only read, and taking a lock costs each run 200 ms (the
// wait before checking for concurrent locks).
func (x *inspectRun) both(args ...string) (cairn result, restic *oracle.Result) {
	x.t.Helper()
	args = append([]string{"--no-lock"}, args...)
	cairn = x.r.run(append([]string{"-r", x.repo}, args...)...)
	restic = x.o.Run(x.repo, args...)
	if cairn.code != restic.ExitCode {
		x.t.Fatalf("exit codes differ: restic %d (stderr %q)\n%s", restic.ExitCode, restic.Stderr, cairn)
	}
	return cairn, restic
}

// same runs args with both and fails unless stdout is byte-identical.
func (x *inspectRun) same(args ...string) string {
	x.t.Helper()
	c, o := x.both(args...)
	if c.stdout != string(o.Stdout) {
		x.t.Errorf("%v: stdout differs\n%s", args, lineDiff(string(o.Stdout), c.stdout))
	}
	return c.stdout
}

// lineDiff shows the first lines where want (restic) and got (cairn)
// differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 8; i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  restic: " + truncateForLog(a) + "\n  cairn:  " + truncateForLog(c) + "\n")
			shown++
		}
	}
	return b.String()
}

func truncateForLog(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// With a tree missing (its pack file deleted) the commands fail or go on
// as restic does: stats, diff and dump stop with exit 1, find reports the
// tree it cannot load and goes on.
func TestInspectMissingTree(t *testing.T) {
	f := inspectFixture(t)
	dir := filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(dir, os.DirFS(f.v2)); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, dir)
	if err := r.LoadIndex(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// The pack of the tree of <src>/links in the first snapshot.
	o := oracleFor(t)
	var links string
	for _, n := range o.CatTree(dir, f.v2IDs[0]+":"+f.src).Nodes {
		if n.Name == "links" {
			links = n.Subtree
		}
	}
	id, err := blob.ParseID(links)
	if err != nil {
		t.Fatalf("subtree of links: %v", err)
	}
	locs := r.Index().Lookup(blob.Handle{ID: id, Type: blob.TreeBlob})
	if len(locs) == 0 {
		t.Fatal("links' tree is not in the index")
	}
	pack := locs[0].Pack.String()
	if err := os.Remove(filepath.Join(dir, "data", pack[:2], pack)); err != nil {
		t.Fatal(err)
	}

	x := newInspectRun(t, dir)
	x.r = x.r.with("RESTIC_CACHE_DIR=" + t.TempDir())
	x.o = x.o.WithCacheDir(t.TempDir()) // no copy of the pack in a cache
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"stats", f.v2IDs[0]}, 1},
		{[]string{"stats", "--mode", "raw-data", f.v2IDs[0]}, 1},
		{[]string{"diff", f.v2IDs[0], f.v2IDs[1]}, 1},
		{[]string{"dump", f.v2IDs[0], f.src + "/links"}, 1},
		{[]string{"find", "*"}, 0},
		{[]string{"--json", "find", "--tree", links}, 0},
	} {
		c, o := x.both(tc.args...)
		if c.code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args, c.code, tc.code, c)
		}
		mine, theirs := c.stdout, string(o.Stdout)
		if tc.args[0] == "--json" {
			// restic writes the JSON directly and its messages through
			// its terminal's queue: their order varies from run to run.
			mine, theirs = sortedLines(mine), sortedLines(theirs)
		}
		if mine != theirs && (tc.args[0] == "find" || tc.args[1] == "find") {
			t.Errorf("%v: stdout differs\n%s", tc.args, lineDiff(theirs, mine))
		}
		if tc.args[0] == "find" && !strings.Contains(c.stdout, "Unable to load tree ") {
			t.Errorf("find did not report the missing tree:\n%s", c.stdout)
		}
	}
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
