package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testserver"
	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/repo"
)

// newCopyRepo creates a repository of the given version with cheap key
// derivation; pol 0 picks a random chunker polynomial.
func newCopyRepo(t *testing.T, version uint, pol chunk.Pol) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("repo-v%d", version))
	ctx := context.Background()
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, testPassword, repo.InitOptions{
		Version: version, Polynomial: pol, Key: repo.KeyOptions{Params: &crypto.TestParams},
	}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	return dir
}

// copySource writes a tree worth copying: small files in subdirectories,
// a file of several chunks, compressible text, an empty file and a link.
func copySource(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	write := func(name string, data []byte) {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 24 {
		write(fmt.Sprintf("dir%d/file%02d.txt", i%3, i), []byte(strings.Repeat(fmt.Sprintf("line %d\n", i), 50+i)))
	}
	big := make([]byte, 3<<20)
	fillRandom(big)
	write("a/big.bin", big)
	write("a/text", []byte(strings.Repeat("compressible, over and over\n", 20000)))
	write("a/empty", nil)
	if err := os.Symlink("big.bin", filepath.Join(src, "a", "link")); err != nil {
		t.Fatal(err)
	}
	return src
}

// copySnapshots lists a repository's snapshots with restic.
func copySnapshots(t *testing.T, o *oracle.Restic, loc string) []oracle.Snapshot {
	t.Helper()
	var list []oracle.Snapshot
	o.RunJSON(loc, &list, "snapshots", "--no-lock")
	return list
}

// checkCopies asserts that every snapshot of src has exactly one copy in
// dst, recognised as restic recognises it, with the same content fields
// and no parent.
func checkCopies(t *testing.T, src, dst []oracle.Snapshot) {
	t.Helper()
	if len(dst) != len(src) {
		t.Fatalf("%d snapshots in the destination, want %d", len(dst), len(src))
	}
	for _, s := range src {
		orig := s.Original
		if orig == "" {
			orig = s.ID
		}
		n := 0
		for _, d := range dst {
			if d.Original != orig {
				continue
			}
			n++
			if !d.Time.Equal(s.Time) || d.Tree != s.Tree || d.Hostname != s.Hostname || strings.Join(d.Paths, ",") != strings.Join(s.Paths, ",") ||
				strings.Join(d.Tags, ",") != strings.Join(s.Tags, ",") || d.Parent != "" || d.Summary == nil {
				t.Errorf("copy %+v of %+v differs", d, s)
			}
		}
		if n != 1 {
			t.Errorf("source snapshot %s has %d copies", s.ShortID, n)
		}
	}
}

// restoreSame restores snapshot id from two repositories with restic and
// compares the trees.
func restoreSame(t *testing.T, o *oracle.Restic, srcLoc, srcID, dstLoc, dstID string) {
	t.Helper()
	want, got := filepath.Join(t.TempDir(), "want"), filepath.Join(t.TempDir(), "got")
	o.Restore(srcLoc, srcID, want)
	o.Restore(dstLoc, dstID, got)
	testtree.Compare(t, want, got, testtree.CompareOptions{IgnoreRoot: true})
}

// copyLines normalises copy's output for a comparison: new snapshot IDs
// replaced, progress lines dropped, lines sorted.
func copyLines(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "[") {
			continue
		}
		if rest, ok := strings.CutPrefix(l, "snapshot "); ok && strings.Contains(rest, " saved, copied") {
			l = "snapshot NEW" + rest[8:]
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// copyOf returns the destination snapshot that copies src.
func copyOf(t *testing.T, src oracle.Snapshot, dst []oracle.Snapshot) oracle.Snapshot {
	t.Helper()
	for _, d := range dst {
		if d.Original == src.ID || (src.Original != "" && d.Original == src.Original) {
			return d
		}
	}
	t.Fatalf("no copy of %s", src.ShortID)
	return oracle.Snapshot{}
}

// restic writes a version 1 repository; cairn copies it into a version 2
// repository (compressed, another key and polynomial) and from there into
// another version 1 repository. restic checks every destination with
// --read-data and restores the copies as it restores the originals; a
// second copy, cairn's or restic's, copies nothing.
func TestCopyLikeRestic(t *testing.T) {
	t.Parallel()
	o := oracleFor(t)
	src := copySource(t)
	v1 := newCopyRepo(t, 1, 0)
	o.Backup(v1, []string{src}, "--host", "h1", "--tag", "t1")
	if err := os.WriteFile(filepath.Join(src, "dir1", "new"), []byte("added later\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Backup(v1, []string{src}, "--host", "h2")
	// A retagged snapshot carries its first ID as original.
	o.MustRun(v1, "tag", "--add", "t2", "--host", "h1")
	srcList := copySnapshots(t, o, v1)

	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v2 := newCopyRepo(t, 2, 0)
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	res := r.ok("-r", v2, "copy", "--from-repo", v1, "--from-password-file", pwFile, "--compression", "max")
	if n := strings.Count(res.stdout, "copy started"); n != 2 {
		t.Errorf("%d snapshots copied, want 2:\n%s", n, res)
	}
	if n := strings.Count(res.stdout, "saved, copied from source snapshot"); n != 2 {
		t.Errorf("%d copies saved, want 2:\n%s", n, res)
	}
	// The same lines as restic's own copy into a fresh repository, but for
	// the new IDs, the order (restic's follows its file listing) and
	// restic's progress counter.
	ref := newCopyRepo(t, 2, 0)
	theirs := o.RunWith(oracle.Cmd{Repo: ref, Args: []string{"copy", "--from-repo", v1}, Env: []string{"RESTIC_FROM_PASSWORD=" + testPassword}})
	if got, want := copyLines(res.stdout), copyLines(string(theirs.Stdout)); got != want {
		t.Errorf("copy printed\n%s\nrestic printed\n%s", got, want)
	}
	if !strings.Contains(res.stderr, "different chunker parameters") {
		t.Errorf("no warning about the chunker parameters:\n%s", res)
	}
	o.MustCheck(v2, true)
	v2List := copySnapshots(t, o, v2)
	checkCopies(t, srcList, v2List)
	for _, s := range srcList {
		restoreSame(t, o, v1, s.ID, v2, copyOf(t, s, v2List).ID)
	}
	var st struct {
		CompressionRatio float64 `json:"compression_ratio"`
	}
	o.RunJSON(v2, &st, "stats", "--no-lock", "--mode", "raw-data")
	if st.CompressionRatio <= 1.1 {
		t.Errorf("copy into a version 2 repository with --compression max: compression ratio %v", st.CompressionRatio)
	}

	// Again: nothing to copy, with cairn (-v names the copies) and with restic.
	res = r.ok("-r", v2, "copy", "-v", "--from-repo", v1, "--from-password-file", pwFile)
	if strings.Contains(res.stdout, "copy started") || strings.Count(res.stdout, "was already copied to snapshot") != 2 {
		t.Errorf("second copy:\n%s", res)
	}
	theirs = o.RunWith(oracle.Cmd{Repo: v2, Args: []string{"copy", "--from-repo", v1}, Env: []string{"RESTIC_FROM_PASSWORD=" + testPassword}})
	if err := theirs.Err(); err != nil || strings.Contains(string(theirs.Stdout), "copy started") {
		t.Errorf("restic copies again what cairn copied (%v):\n%s", err, theirs.Output())
	}

	// Version 2 (compressed, written by cairn) into version 1: the data
	// goes uncompressed, which is all a version 1 repository may hold.
	back := newCopyRepo(t, 1, 0)
	locFile := filepath.Join(t.TempDir(), "loc")
	if err := os.WriteFile(locFile, []byte(v2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.with("RESTIC_FROM_PASSWORD="+testPassword).ok("-r", back, "copy", "--from-repository-file", locFile, "--host", "h2")
	o.MustCheck(back, true)
	backList := copySnapshots(t, o, back)
	if len(backList) != 1 || backList[0].Hostname != "h2" {
		t.Fatalf("copy --host h2 copied %+v", backList)
	}
	// The copy of a copy keeps the first original.
	h2 := srcList[0]
	if h2.Hostname != "h2" {
		h2 = srcList[1]
	}
	if backList[0].Original != h2.ID {
		t.Errorf("copy of a copy has original %s, want %s", backList[0].Original, h2.ID)
	}
	restoreSame(t, o, v1, h2.ID, back, backList[0].ID)

	// restic copies into a repository cairn wrote to; cairn then finds
	// restic's copy and copies nothing more.
	theirs = o.RunWith(oracle.Cmd{Repo: back, Args: []string{"copy", "--from-repo", v2, "--host", "h1"}, Env: []string{"RESTIC_FROM_PASSWORD=" + testPassword}})
	if err := theirs.Err(); err != nil || !strings.Contains(string(theirs.Stdout), "copy started") {
		t.Fatalf("restic copy into cairn's repository (%v):\n%s", err, theirs.Output())
	}
	res = r.with("RESTIC_FROM_PASSWORD="+testPassword).ok("-r", back, "copy", "--from-repo", v2)
	if strings.Contains(res.stdout, "copy started") {
		t.Errorf("cairn copies again what restic copied:\n%s", res)
	}
	o.MustCheck(back, true)
	checkCopies(t, srcList, copySnapshots(t, o, back))

	// Refusals.
	res = r.expect(1, "-r", back, "copy")
	if !strings.Contains(res.stderr, "Please specify a source repository location (--from-repo or --from-repository-file)") {
		t.Errorf("copy without a source:\n%s", res)
	}
	res = r.expect(12, "-r", back, "copy", "--from-repo", v1, "--from-password-command", "echo wrong")
	if !strings.Contains(res.stderr, "wrong password") {
		t.Errorf("copy with a wrong source password:\n%s", res)
	}
	for _, dir := range []string{v1, v2, back} {
		if locks := lockFiles(t, dir); len(locks) != 0 {
			t.Errorf("locks left in %s: %v", dir, locks)
		}
	}
}

// A copy to rest-server that resumes: the destination holds the data of
// one snapshot already (an earlier copy of it alone), and later the data of
// another without its snapshot file (a copy interrupted before the
// snapshot was saved). Only what is missing is uploaded.
func TestCopyToRestServerResumes(t *testing.T) {
	o := oracleFor(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_FROM_PASSWORD="+testPassword)
	src := copySource(t)
	local := newRepo(t)
	first := backupJSON(t, r, "-r", local, filepath.Join(src, "a"))["snapshot_id"].(string)
	second := backupJSON(t, r, "-r", local, src)["snapshot_id"].(string)

	// The destination: same polynomial (init --copy-chunker-params), on
	// the server.
	srv := testserver.RestServer(t, testserver.RestOptions{})
	pol := openRepo(t, local).Config().Polynomial
	if err := os.CopyFS(filepath.Join(srv.DataDir, "copy"), os.DirFS(newCopyRepo(t, 2, pol))); err != nil {
		t.Fatal(err)
	}
	rest := srv.Repo("", "", "copy")
	packs := func() int { return len(o.List(rest, "packs")) }

	res := r.ok("-r", rest, "copy", "--from-repo", local, first[:8])
	if strings.Count(res.stdout, "saved, copied from source snapshot") != 1 || strings.Contains(res.stderr, "chunker") {
		t.Fatalf("copy of the first snapshot:\n%s", res)
	}
	res = r.ok("-r", rest, "copy", "-v", "--from-repo", local)
	if !strings.Contains(res.stdout, "skipping source snapshot "+first[:8]) || strings.Count(res.stdout, "copy started") != 1 {
		t.Errorf("resumed copy:\n%s", res)
	}
	// Only the second snapshot's own blobs: the trees on the path to src
	// and src itself (they list other entries than the first snapshot's),
	// dir0..dir2 and their 24 files. a/ and all in it are there already.
	pathTrees := len(strings.Split(strings.Trim(src, "/"), "/")) + 1
	if want := fmt.Sprintf("  copy %d blobs", pathTrees+3+24); !strings.Contains(res.stdout, want) {
		t.Errorf("resumed copy did not copy just the missing blobs:\n%s", res)
	}

	// Drop the second copy's snapshot file, as if the copy had been
	// interrupted before saving it: copying again saves it and uploads
	// no data.
	dstList := copySnapshots(t, o, rest)
	var secondCopy string
	for _, sn := range dstList {
		if sn.Original == second {
			secondCopy = sn.ID
		}
	}
	if secondCopy == "" {
		t.Fatalf("no copy of %s in %+v", second, dstList)
	}
	if err := os.Remove(filepath.Join(srv.DataDir, "copy", "snapshots", secondCopy)); err != nil {
		t.Fatal(err)
	}
	before := packs()
	res = r.ok("-r", rest, "copy", "-v", "--from-repo", local)
	if !strings.Contains(res.stdout, "  copy 0 blobs with disk size 0 B in 0 packfiles") || strings.Count(res.stdout, "saved, copied from source snapshot "+second[:8]) != 1 {
		t.Errorf("copy after an interruption:\n%s", res)
	}
	if after := packs(); after != before {
		t.Errorf("%d packs uploaded for data the destination had", after-before)
	}

	o.MustCheck(rest, true)
	srcList := copySnapshots(t, o, local)
	dstList = copySnapshots(t, o, rest)
	checkCopies(t, srcList, dstList)
	restored := filepath.Join(t.TempDir(), "restored")
	o.Restore(rest, copyOf(t, oracle.Snapshot{ID: second}, dstList).ID, restored)
	testtree.Compare(t, src, filepath.Join(restored, src), testtree.CompareOptions{IgnoreRoot: true})

	if res := r.ok("-r", rest, "copy", "--from-repo", local); strings.Contains(res.stdout, "copy started") {
		t.Errorf("copy with nothing to copy:\n%s", res)
	}
}
