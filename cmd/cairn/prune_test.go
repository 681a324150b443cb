package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testserver"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

// pruneFixture is a repository after several backups in which files come
// and go, one backup without compression, and a forget: partly used, unused
// and small packs, uncompressed data, trees.
type pruneFixture struct {
	dir, src string
	o        *oracle.Restic
}

// The fixture is built once per test binary, below the directory that
// TestMain removes at the end; each test copies the repository.
var (
	pruneFixtureOnce  sync.Once
	pruneFixtureBuilt *pruneFixture
)

func newPruneFixture(t *testing.T) *pruneFixture {
	t.Helper()
	pruneFixtureOnce.Do(func() { pruneFixtureBuilt = buildPruneFixture(t) })
	if pruneFixtureBuilt == nil {
		t.Fatal("building the prune fixture failed in an earlier test")
	}
	return &pruneFixture{dir: pruneFixtureBuilt.dir, src: pruneFixtureBuilt.src, o: oracleFor(t)}
}

func buildPruneFixture(t *testing.T) *pruneFixture {
	t.Helper()
	base := filepath.Join(filepath.Dir(cairnBin), "prune-fixture")
	f := &pruneFixture{dir: filepath.Join(base, "repo"), src: filepath.Join(base, "src"), o: oracleFor(t)}
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", newRepo(t), f.dir).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+f.dir)
	rng := rand.New(rand.NewPCG(7, 11))
	for round := range 7 {
		for j := range 5 {
			// Half random, half text: compression matters but not everything.
			data := make([]byte, 40<<10+rng.IntN(200<<10))
			for i := range data {
				if i < len(data)/2 {
					data[i] = byte(rng.Uint32())
				} else {
					data[i] = "prune me gently\n"[i%16]
				}
			}
			p := filepath.Join(f.src, fmt.Sprintf("d%d", j%3), fmt.Sprintf("r%d-%d", round, j))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if round >= 2 {
			// Files of two rounds ago go: their blobs stay only in the
			// older snapshots.
			old, _ := filepath.Glob(filepath.Join(f.src, "d*", fmt.Sprintf("r%d-*", round-2)))
			for _, p := range old {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}
		args := []string{"backup", "--host", "h", f.src}
		if round == 3 {
			args = append(args, "--compression", "off")
		}
		r.ok(args...)
	}
	r.ok("forget", "--keep-last", "3")
	unreferencedPack(t, f.dir)
	return f
}

// copyRepo copies a repository directory, so each case starts from the same
// state.
func copyRepo(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy repository: %v\n%s", err, out)
	}
	return dst
}

// dataSize is the total size of the pack files.
func dataSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(filepath.Join(dir, "data"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// pruneStatsLines are the statistics lines of a verbose prune (restic's or
// cairn's), with runs of spaces squeezed.
func pruneStatsLines(out string) []string {
	labels := []string{"used:", "duplicates:", "unused:", "unreferenced:", "total:", "unused size", "to repack:",
		"this removes:", "to delete:", "total prune:", "not yet compressed:", "remaining:", "totally used packs:",
		"partly used packs:", "unused packs:", "to keep:"}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.Join(strings.Fields(l), " ")
		for _, p := range labels {
			if strings.HasPrefix(l, p) {
				lines = append(lines, l)
				break
			}
		}
	}
	return lines
}

// snapshotListings is restic's `ls --json` of every snapshot, by ID.
func snapshotListings(t *testing.T, o *oracle.Restic, dir string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, id := range o.List(dir, "snapshots") {
		out[id] = string(o.MustRun(dir, "ls", "--json", id).Stdout)
	}
	return out
}

// rawDataSize is restic's `stats --mode raw-data` total size.
func rawDataSize(t *testing.T, o *oracle.Restic, dir string) float64 {
	t.Helper()
	var st struct {
		TotalSize float64 `json:"total_size"`
	}
	o.RunJSON(dir, &st, "stats", "--mode", "raw-data", "--json")
	return st.TotalSize
}

// TestPruneLikeRestic plans each option like restic's prune --dry-run (same
// statistics, so the same packs to keep, repack and delete), then prunes:
// restic checks every byte, lists every snapshot as before, counts the same
// raw data, and the repository shrank.
func TestPruneLikeRestic(t *testing.T) {
	f := newPruneFixture(t)
	listings := snapshotListings(t, f.o, f.dir)
	raw := rawDataSize(t, f.o, f.dir)
	size := dataSize(t, f.dir)
	cases := [][]string{
		nil,
		{"--max-unused", "0"},
		{"--max-unused", "unlimited"},
		{"--max-repack-size", "300k"},
		{"--max-repack-size", "0"},
		{"--repack-cacheable-only"},
		{"--repack-smaller-than", "4M"},
		{"--repack-uncompressed"},
	}
	for _, args := range cases {
		t.Run(strings.Join(append([]string{"prune"}, args...), " "), func(t *testing.T) {
			// Mostly waiting for processes and disks: in parallel.
			t.Parallel()
			o := oracleFor(t)
			dir := copyRepo(t, f.dir)
			r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
			theirs := o.MustRun(dir, append([]string{"prune", "--dry-run", "-v"}, args...)...)
			mine := r.ok(append([]string{"prune", "--dry-run", "-v"}, args...)...)
			want, got := pruneStatsLines(string(theirs.Stdout)), pruneStatsLines(mine.stdout)
			if len(want) < 10 || !slices.Equal(want, got) {
				t.Fatalf("dry-run statistics differ\nrestic:\n%s\ncairn:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
			}
			if !slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "unreferenced:") }) {
				t.Errorf("no unreferenced pack in the plan:\n%s", strings.Join(got, "\n"))
			}
			if dataSize(t, dir) != size {
				t.Fatal("the dry run changed the packs")
			}

			res := r.ok(append([]string{"prune"}, args...)...)
			if !strings.Contains(res.stdout, "done") {
				t.Errorf("no 'done':\n%s", res)
			}
			o.MustCheck(dir, true)
			if got := snapshotListings(t, o, dir); !maps.Equal(got, listings) {
				t.Error("restic lists the snapshots differently after the prune")
			}
			// Raw data is the stored size of the used blobs: the same, or
			// smaller once repacked blobs are compressed.
			if got := rawDataSize(t, o, dir); got > raw || (got != raw && !slices.Contains(args, "--repack-uncompressed")) {
				t.Errorf("raw data %v after the prune, %v before", got, raw)
			}
			after := dataSize(t, dir)
			deletes := !strings.Contains(want[len(want)-1], " 0 packs") || !strings.Contains(res.stdout, "to delete: 0 blobs")
			if deletes && after >= size {
				t.Errorf("packs take %d bytes after the prune, %d before", after, size)
			}
			// What the plan removed is gone: restic finds nothing more to
			// delete at the same setting.
			again := pruneStatsLines(string(o.MustRun(dir, append([]string{"prune", "--dry-run", "-v"}, args...)...).Stdout))
			if !slices.Contains(again, "to delete: 0 packs") {
				t.Errorf("restic would still delete packs:\n%s", strings.Join(again, "\n"))
			}
			if len(args) >= 2 && args[1] == "0" && args[0] == "--max-unused" {
				if !slices.Contains(again, "unused: 0 blobs / 0 B") {
					t.Errorf("unused data left after --max-unused 0:\n%s", strings.Join(again, "\n"))
				}
			}
		})
	}
}

// TestForgetPrune: forget --prune plans like restic's (dry run: with the
// snapshots it would remove left out), then removes the snapshots and the
// data only they used.
func TestForgetPrune(t *testing.T) {
	f := newPruneFixture(t)
	dir := copyRepo(t, f.dir)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	size := dataSize(t, dir)
	args := []string{"forget", "--keep-last", "1", "--prune", "--max-unused", "0"}

	theirs := f.o.MustRun(dir, append(args, "--dry-run", "-v")...)
	mine := r.ok(append(args, "--dry-run", "-v")...)
	if !strings.Contains(mine.stdout, "2 snapshots would be removed, running prune dry run") {
		t.Errorf("no prune dry run:\n%s", mine)
	}
	want, got := pruneStatsLines(string(theirs.Stdout)), pruneStatsLines(mine.stdout)
	if len(want) < 10 || !slices.Equal(want, got) {
		t.Fatalf("dry-run statistics differ\nrestic:\n%s\ncairn:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
	if n := len(f.o.List(dir, "snapshots")); n != 3 || dataSize(t, dir) != size {
		t.Fatalf("the dry run changed the repository (%d snapshots)", n)
	}

	res := r.ok(args...)
	if !strings.Contains(res.stdout, "2 snapshots have been removed, running prune") || !strings.Contains(res.stdout, "done") {
		t.Errorf("forget --prune:\n%s", res)
	}
	f.o.MustCheck(dir, true)
	if n := len(f.o.List(dir, "snapshots")); n != 1 {
		t.Errorf("%d snapshots left", n)
	}
	if after := dataSize(t, dir); after >= size {
		t.Errorf("packs take %d bytes after forget --prune, %d before", after, size)
	}
	again := pruneStatsLines(string(f.o.MustRun(dir, "prune", "--dry-run", "-v", "--max-unused", "0").Stdout))
	if !slices.Contains(again, "unused: 0 blobs / 0 B") || !slices.Contains(again, "to delete: 0 packs") {
		t.Errorf("restic still finds unused data:\n%s", strings.Join(again, "\n"))
	}
	// The remaining snapshot restores byte for byte.
	target := t.TempDir()
	f.o.MustRun(dir, "restore", "latest", "--target", target)
	if out, err := exec.Command("diff", "-r", f.src, filepath.Join(target, f.src)).CombinedOutput(); err != nil {
		t.Errorf("restore differs from the source: %v\n%s", err, out)
	}

	// Nothing removed, nothing pruned.
	res = r.ok("forget", "--keep-last", "5", "--prune")
	if strings.Contains(res.stdout, "running prune") {
		t.Errorf("prune ran without removed snapshots:\n%s", res)
	}
}

// TestPruneAfterResticPrune: cairn reads a repository that restic pruned.
func TestPruneAfterResticPrune(t *testing.T) {
	f := newPruneFixture(t)
	dir := copyRepo(t, f.dir)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	f.o.MustRun(dir, "prune", "--max-unused", "0", "--repack-uncompressed")
	r.ok("check", "--read-data")
	target := t.TempDir()
	r.ok("restore", "latest", "--target", target)
	if out, err := exec.Command("diff", "-r", f.src, filepath.Join(target, f.src)).CombinedOutput(); err != nil {
		t.Errorf("restore differs from the source: %v\n%s", err, out)
	}
	// And prunes it further without harm.
	r.ok("forget", "--keep-last", "1", "--prune")
	f.o.MustCheck(dir, true)
}

// TestPruneRefuses: a used pack that is missing, or used blobs missing from
// the index, stop the prune before anything changes (restic refuses too);
// an append-only rest-server is refused before anything changes.
func TestPruneRefuses(t *testing.T) {
	f := newPruneFixture(t)
	listFiles := func(dir string) []string {
		var names []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.Contains(p, "/locks/") {
				names = append(names, strings.TrimPrefix(p, dir))
			}
			return err
		})
		return names
	}

	t.Run("index file missing", func(t *testing.T) {
		o := oracleFor(t)
		dir := copyRepo(t, f.dir)
		// The index file that lists a data blob the newest snapshot needs.
		_, idxFile := neededDataPack(t, o, dir, f.src)
		if err := os.Remove(filepath.Join(dir, "index", idxFile)); err != nil {
			t.Fatal(err)
		}
		before := listFiles(dir)
		// Trees and data blobs went: restic and cairn stop at the first
		// tree they cannot load or, if all trees load, at the data blobs.
		theirs := o.Run(dir, "prune")
		if theirs.ExitCode != 1 {
			t.Fatalf("restic: %s", theirs.Output())
		}
		res := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir).expect(1, "prune")
		for _, msg := range []string{"failed finding blobs", "not found in the index"} {
			if strings.Contains(string(theirs.Stderr), msg) && !strings.Contains(res.stderr, msg) {
				t.Errorf("restic says %q, cairn: %s", msg, res)
			}
		}
		if !slices.Equal(before, listFiles(dir)) {
			t.Error("the refused prune changed the repository")
		}
	})

	t.Run("pack missing", func(t *testing.T) {
		o := oracleFor(t)
		dir := copyRepo(t, f.dir)
		packOf, _ := neededDataPack(t, o, dir, f.src)
		if err := os.Remove(filepath.Join(dir, "data", packOf[:2], packOf)); err != nil {
			t.Fatal(err)
		}
		before := listFiles(dir)
		if res := o.Run(dir, "prune"); res.ExitCode != 1 || !strings.Contains(string(res.Stderr), "needed pack files which are missing") {
			t.Fatalf("restic: %s", res.Output())
		}
		res := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir).expect(1, "prune")
		if !strings.Contains(res.stderr, "needed pack files which are missing") || !strings.Contains(res.stderr, packOf) {
			t.Errorf("cairn: %s", res)
		}
		if !slices.Equal(before, listFiles(dir)) {
			t.Error("the refused prune changed the repository")
		}
	})

	t.Run("append-only rest-server", func(t *testing.T) {
		o := oracleFor(t)
		srv := testserver.RestServer(t, testserver.RestOptions{AppendOnly: true})
		dir := filepath.Join(srv.DataDir, "repo")
		if out, err := exec.Command("cp", "-a", f.dir, dir).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		before := listFiles(dir)
		r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+srv.Repo("", "", "repo"))
		res := r.expect(1, "prune")
		if !strings.Contains(res.stderr, "does not allow deleting files (append-only?)") {
			t.Errorf("cairn: %s", res)
		}
		// All that changed is the empty index file of the test delete.
		after := listFiles(dir)
		added := slices.DeleteFunc(slices.Clone(after), func(n string) bool { return slices.Contains(before, n) })
		if len(added) != 1 || !strings.HasPrefix(added[0], "/index/") || len(after) != len(before)+1 {
			t.Errorf("the refused prune changed the repository: before %q\nafter %q", before, after)
		}
		// The fixture's unreferenced pack is restic's only remark.
		if c := o.Check(dir, false); c.ExitCode != 0 || !strings.Contains(string(c.Stdout), "no errors were found") {
			t.Errorf("restic check after the refusal:\n%s", c.Output())
		}
		// A dry run works: it changes nothing.
		r.ok("prune", "--dry-run")
	})
}

// TestPruneFlags: restic's flag checks and messages.
func TestPruneFlags(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--max-unused", "100%"}, "percentage for --max-unused must be below 100%"},
		{[]string{"--max-unused", "-1%"}, "percentage for --max-unused must be positive"},
		{[]string{"--max-unused", "x"}, `invalid number of bytes "x" for --max-unused`},
		{[]string{"--repack-smaller-than", "0"}, "--repack-smaller-than must be larger than zero"},
		{[]string{"--repack-smaller-than", "64M"}, "repack-smaller-than exceeds repository packsize"},
		{[]string{"--repack-uncompressed", "--compression", "off"}, "disabled compression and `--repack-uncompressed` are mutually exclusive"},
		{[]string{"--no-lock"}, "--no-lock is only applicable in combination with --dry-run for prune command"},
	} {
		res := r.expect(1, append([]string{"prune"}, c.args...)...)
		if !strings.Contains(res.stderr, c.msg) {
			t.Errorf("%v: want %q in\n%s", c.args, c.msg, res)
		}
	}
	// restic's prune has no JSON output and prints its text regardless.
	if res := r.ok("--json", "prune", "--dry-run"); !strings.Contains(res.stdout, "Would have made the following changes:") {
		t.Errorf("prune --json: %s", res)
	}
}

// neededDataPack returns the pack of the first data blob of the newest
// snapshot's SRC/d0, and the index file that lists it.
func neededDataPack(t *testing.T, o *oracle.Restic, dir, src string) (packID, indexID string) {
	t.Helper()
	tree := o.CatTree(dir, o.List(dir, "snapshots")[0]+":"+src+"/d0")
	want := tree.Nodes[0].Content[0]
	for _, id := range o.List(dir, "index") {
		for _, p := range o.CatIndex(dir, id).Packs {
			for _, b := range p.Blobs {
				if b.ID == want {
					return p.ID, id
				}
			}
		}
	}
	t.Fatal("data blob not found in the index")
	return "", ""
}

// TestRunForgetPrune: a job whose forget step has --prune backs up, forgets
// and prunes; restic checks every byte afterwards.
func TestRunForgetPrune(t *testing.T) {
	f := newPruneFixture(t)
	dir := copyRepo(t, f.dir)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	size := dataSize(t, dir)
	cfg := filepath.Join(t.TempDir(), "job.yaml")
	writeJobFile(t, cfg, `
sources:
  - name: data
    host: h
    paths: [`+f.src+`]
forget: [--keep-last, "1", --prune, --max-unused, "0"]
`)
	res := r.ok("run", "--config", cfg)
	if !strings.Contains(res.stdout+res.stderr, "running prune") {
		t.Errorf("no prune in the job's output:\n%s", res)
	}
	f.o.MustCheck(dir, true)
	if n := len(f.o.List(dir, "snapshots")); n != 1 {
		t.Errorf("%d snapshots left, want 1", n)
	}
	if after := dataSize(t, dir); after >= size {
		t.Errorf("packs take %d bytes after the job, %d before", after, size)
	}
}

// unreferencedPack leaves a pack that no index lists, as a backup killed
// before writing its index does: prune deletes such packs first.
func unreferencedPack(t *testing.T, dir string) {
	t.Helper()
	ctx := t.Context()
	r := openRepo(t, dir)
	if err := r.LoadIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.SaveBlob(ctx, blob.DataBlob, []byte("written by a backup that was killed"), blob.ID{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var newest []blob.ID
	for _, p := range r.Index().Packs() {
		if files := r.Index().IndexFilesOf(p); len(files) == 1 && len(newest) == 0 {
			// The writer's index file lists its one pack and nothing else.
			f, err := r.LoadIndexFile(ctx, files[0])
			if err == nil && len(f.Packs) == 1 && f.Packs[0].Blobs[0].Length == uint32(len("written by a backup that was killed"))+32 {
				newest = files
			}
		}
	}
	if len(newest) != 1 {
		t.Fatal("index file of the extra pack not found")
	}
	if err := r.Backend().Remove(ctx, backend.Handle{Type: backend.IndexFile, Name: newest[0].String()}); err != nil {
		t.Fatal(err)
	}
}

// TestPruneLocked: prune needs the exclusive lock (exit 11 while a backup
// holds a lock); a dry run with --no-lock does not.
func TestPruneLocked(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	rp := openRepo(t, dir)
	_, lock, err := rp.Lock(t.Context(), false, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	res := r.expect(11, "prune")
	if !strings.Contains(res.stderr, "locked") {
		t.Errorf("prune under a lock: %s", res)
	}
	r.ok("--no-lock", "prune", "--dry-run")
}

// TestPruneKilled: a prune killed while it repacks or rewrites the index
// leaves a repository restic reads without errors, and the next prune
// finishes the job.
func TestPruneKilled(t *testing.T) {
	f := newPruneFixture(t)
	listings := snapshotListings(t, f.o, f.dir)
	for _, stage := range []string{"repacking packs", "rebuilding index"} {
		t.Run(stage, func(t *testing.T) {
			t.Parallel()
			o := oracleFor(t)
			dir := copyRepo(t, f.dir)
			r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
			cmd := r.command(t.Context(), "prune", "--max-unused", "0", "--repack-uncompressed")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			seen := false
			for !seen && sc.Scan() {
				seen = sc.Text() == stage
			}
			_ = cmd.Process.Kill()
			err = cmd.Wait()
			var ee *exec.ExitError
			if !seen || !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
				t.Fatalf("prune was not killed at %q (stage seen: %v, wait: %v): nothing tested", stage, seen, err)
			}

			// Readable, whatever the kill interrupted (restic may hint at
			// packs no index lists yet: the next prune removes them).
			// The dead process's lock is stale: unlock removes it.
			o.MustRun(dir, "unlock")
			if res := o.Run(dir, "check"); res.ExitCode != 0 {
				t.Fatalf("restic check after the kill:\n%s", res.Output())
			}
			r.ok("prune", "--max-unused", "0")
			o.MustCheck(dir, true)
			if got := snapshotListings(t, o, dir); !maps.Equal(got, listings) {
				t.Error("restic lists the snapshots differently after the prunes")
			}
		})
	}
}
