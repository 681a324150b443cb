package oracle_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/fixtures"
	"github.com/cairn-backup/cairn/internal/oracle"
)

// TestRoundTrip drives restic through the oracle alone on both repository
// versions: init, backup, inspect, check, restore, re-backup, forget, keys.
func TestRoundTrip(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run("v"+string(rune('0'+version)), func(t *testing.T) {
			testRoundTrip(t, version)
		})
	}
}

func testRoundTrip(t *testing.T, version int) {
	r := oracle.New(t).WithEnv("RESTIC_HOST=oracle-test")
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	if err := fixtures.MakeTree(src); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(tmp, "repo")

	init := r.Init(repo, version)
	cfg := r.CatConfig(repo)
	if cfg.Version != uint(version) || cfg.ID != init.ID {
		t.Fatalf("config = %+v, want version %d and ID %s", cfg, version, init.ID)
	}

	sum := r.InDir(src).Backup(repo, []string{"."}, "--tag", "first")
	if sum.FilesNew != 8 || sum.DirsNew == 0 || sum.FilesUnmodified != 0 {
		t.Errorf("first backup: files_new=%d dirs_new=%d files_unmodified=%d, want 8 new files", sum.FilesNew, sum.DirsNew, sum.FilesUnmodified)
	}
	// big.bin has two blobs, hello.txt and sub/dup.txt share one, empty has
	// none: 7 data blobs. Trees: the root, emptydir, sub, sub/deeper.
	if sum.DataBlobs != 7 || sum.TreeBlobs != 4 {
		t.Errorf("first backup: data_blobs=%d tree_blobs=%d, want 7 and 4", sum.DataBlobs, sum.TreeBlobs)
	}
	if len(sum.SnapshotID) != 64 || len(sum.Errors) != 0 {
		t.Fatalf("first backup: snapshot %q, errors %+v", sum.SnapshotID, sum.Errors)
	}

	snaps := r.Snapshots(repo)
	if len(snaps) != 1 || snaps[0].ID != sum.SnapshotID || snaps[0].Hostname != "oracle-test" ||
		!slices.Equal(snaps[0].Tags, []string{"first"}) || snaps[0].Paths[0] != src {
		t.Fatalf("snapshots = %+v, want the one of the backup", snaps)
	}
	if snaps[0].Summary == nil || snaps[0].Summary.DataBlobs != sum.DataBlobs {
		t.Errorf("snapshot summary = %+v, want data_blobs %d", snaps[0].Summary, sum.DataBlobs)
	}

	ls := r.Ls(repo, sum.SnapshotID)
	if ls.Snapshot.ID != sum.SnapshotID {
		t.Errorf("ls snapshot = %s, want %s", ls.Snapshot.ID, sum.SnapshotID)
	}
	byPath := map[string]oracle.LsNode{}
	for _, n := range ls.Nodes {
		byPath[n.Path] = n
	}
	if n := byPath["/"+fixtures.BigFile]; n.Type != "file" || n.Size == nil || *n.Size != fixtures.BigFileSize {
		t.Errorf("ls big.bin = %+v, want a file of %d bytes", n, fixtures.BigFileSize)
	}
	if n := byPath["/empty"]; n.Size == nil || *n.Size != 0 {
		t.Errorf("ls empty = %+v, want size 0 present", n)
	}
	if n := byPath["/link"]; n.Type != "symlink" {
		t.Errorf("ls link = %+v, want a symlink", n)
	}
	if n := byPath["/sub/deeper"]; n.Type != "dir" || n.Mode.Perm() != 0o700 {
		t.Errorf("ls sub/deeper = %+v, want a 0700 dir", n)
	}

	r.MustCheck(repo, true)

	target := filepath.Join(tmp, "restored")
	rs := r.Restore(repo, sum.SnapshotID, target)
	if rs.FilesRestored == 0 || rs.TotalBytes < fixtures.BigFileSize {
		t.Errorf("restore summary = %+v", rs)
	}
	compareTrees(t, src, target)

	again := r.InDir(src).Backup(repo, []string{"."})
	if again.FilesUnmodified != 8 || again.FilesNew != 0 || again.DataBlobs != 0 || again.TreeBlobs != 0 {
		t.Errorf("unchanged re-backup = %+v, want every file unmodified and nothing added", again)
	}
	snaps = r.Snapshots(repo)
	if len(snaps) != 2 || snaps[1].Parent != sum.SnapshotID {
		t.Fatalf("after re-backup: %d snapshots, second parent %q, want 2 and %s", len(snaps), snaps[len(snaps)-1].Parent, sum.SnapshotID)
	}

	groups := r.ForgetDryRunJSON(repo, "--keep-last", "1")
	if len(groups) != 1 || len(groups[0].Keep) != 1 || len(groups[0].Remove) != 1 ||
		groups[0].Keep[0].ID != again.SnapshotID || groups[0].Remove[0].ID != sum.SnapshotID {
		t.Errorf("forget --dry-run --keep-last 1 = %+v", groups)
	}
	if got := len(r.Snapshots(repo)); got != 2 {
		t.Errorf("dry run removed snapshots: %d left", got)
	}

	keyID := r.KeyAdd(repo, "second", "--user", "oracle", "--host", "oracle-test")
	keys := r.KeyList(repo)
	if len(keys) != 2 || !slices.ContainsFunc(keys, func(k oracle.Key) bool { return k.ID == keyID && !k.Current }) {
		t.Errorf("key list = %+v, want two keys including %s", keys, keyID)
	}
	second := r.WithPassword("second")
	if got := second.KeyList(repo); !slices.ContainsFunc(got, func(k oracle.Key) bool { return k.ID == keyID && k.Current }) {
		t.Errorf("key list with the second password = %+v, want %s current", got, keyID)
	}
	if res := r.WithPassword("wrong").Run(repo, "snapshots"); res.ExitCode != oracle.ExitWrongPassword {
		t.Errorf("wrong password: exit code %d, want %d\n%s", res.ExitCode, oracle.ExitWrongPassword, res.Output())
	}
	if res := r.Run(filepath.Join(tmp, "missing"), "snapshots"); res.ExitCode != oracle.ExitNoRepository {
		t.Errorf("missing repository: exit code %d, want %d", res.ExitCode, oracle.ExitNoRepository)
	}
}

// TestCheckDetectsDamage proves Check can fail: a flipped byte in a pack is
// reported by check --read-data (and not by the structure-only check).
func TestCheckDetectsDamage(t *testing.T) {
	r := oracle.New(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("cairn "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(tmp, "repo")
	r.Init(repo, 2)
	r.Backup(repo, []string{src})
	r.MustCheck(repo, true)

	packs := r.List(repo, "packs")
	if len(packs) == 0 {
		t.Fatal("no packs after a backup")
	}
	var damaged bool
	for _, id := range packs {
		p := filepath.Join(repo, "data", id[:2], id)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) < 100 {
			continue
		}
		data[20] ^= 0x01 // inside the first blob
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		damaged = true
		break
	}
	if !damaged {
		t.Fatal("no pack large enough to damage")
	}
	c := r.Check(repo, true)
	if c.Clean || c.OK() {
		t.Fatalf("check --read-data of a damaged repository: clean=%v exit=%d\n%s", c.Clean, c.ExitCode, c.Output())
	}
	if !strings.Contains(c.Output(), "pack") {
		t.Errorf("check output does not name the damaged pack:\n%s", c.Output())
	}
}

// TestEnvironmentIsolated proves that the developer's RESTIC_* variables do
// not reach restic and that the password never appears in the arguments.
func TestEnvironmentIsolated(t *testing.T) {
	t.Setenv("RESTIC_REPOSITORY", filepath.Join(t.TempDir(), "not-this-one"))
	t.Setenv("RESTIC_PASSWORD", "not-this-password")
	t.Setenv("RESTIC_PASSWORD_COMMAND", "false")
	r := oracle.New(t).WithPassword("s3cret-pw")
	repo := filepath.Join(t.TempDir(), "repo")
	r.Init(repo, 2)
	res := r.MustRun(repo, "snapshots", "--json")
	for _, a := range res.Args {
		if strings.Contains(a, "s3cret-pw") {
			t.Fatalf("password on the command line: %q", res.Args)
		}
	}
	if strings.TrimSpace(string(res.Stdout)) != "[]" {
		t.Errorf("snapshots of a new repository = %q, want []", res.Stdout)
	}
	if res := r.Run("", "snapshots"); res.OK() {
		t.Errorf("restic without --repo used RESTIC_REPOSITORY from the test's environment:\n%s", res.Output())
	}
	if !strings.HasPrefix(r.Version(), "restic 0.19.1 ") {
		t.Errorf("version = %q, want restic 0.19.1", r.Version())
	}
}

// compareTrees asserts that got has the same entries as want: types,
// permission bits, contents, link targets and modification times.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(want, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		if rel != "." { // restic keeps no metadata for the directory backed up as "."
			paths = append(paths, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range paths {
		wi, err := os.Lstat(filepath.Join(want, rel))
		if err != nil {
			t.Fatal(err)
		}
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("restored tree lacks %s: %v", rel, err)
			continue
		}
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		if !wi.ModTime().Equal(gi.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
		}
		switch {
		case wi.Mode().IsRegular():
			w, _ := os.ReadFile(filepath.Join(want, rel))
			g, err := os.ReadFile(filepath.Join(got, rel))
			if err != nil || !bytes.Equal(w, g) {
				t.Errorf("%s: restored content differs (%d vs %d bytes, %v)", rel, len(g), len(w), err)
			}
		case wi.Mode()&os.ModeSymlink != 0:
			w, _ := os.Readlink(filepath.Join(want, rel))
			g, _ := os.Readlink(filepath.Join(got, rel))
			if w != g {
				t.Errorf("%s: link target %q, want %q", rel, g, w)
			}
		}
	}
	var extra []string
	_ = filepath.WalkDir(got, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(got, p)
		if err == nil && rel != "." && !slices.Contains(paths, rel) {
			extra = append(extra, rel)
		}
		return nil
	})
	if len(extra) > 0 {
		t.Errorf("restored tree has extra entries %q", extra)
	}
}
