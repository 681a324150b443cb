package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
)

// The repair tests damage restic-made and cairn-made repositories, repair
// one copy with restic 0.19.1 and an identical copy with cairn, and demand
// the same outcome: the same blobs indexed, the same repaired trees (same
// IDs, so the same bytes), the same messages, and a repository restic then
// checks clean and restores from.

// repairSeeded returns n incompressible bytes that depend on seed.
func repairSeeded(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	block := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n]
}

// repairBase is a repository with two snapshots of a small tree: the second
// adds c/new (in a data pack of its own) and d/ok.
type repairBase struct {
	badRepo
	src     string
	newBlob blob.ID // the one data blob of c/new
}

const repairHost = "repair-test"

func newRepairBase(t *testing.T, maker string) *repairBase {
	t.Helper()
	b := &repairBase{src: t.TempDir()}
	writeFiles(t, b.src, map[string]string{
		"a/f1":    string(repairSeeded("f1", 200<<10)),
		"a/f2":    string(repairSeeded("f2", 150<<10)),
		"b/small": "small file\n",
	})
	second := map[string]string{"c/new": string(repairSeeded("new", 100<<10)), "d/ok": "ok\n"}
	b.newBlob = blob.Hash([]byte(second["c/new"]))
	switch maker {
	case "restic":
		o := oracleFor(t).InDir(b.src)
		b.dir = filepath.Join(t.TempDir(), "repo")
		o.Init(b.dir, 2)
		// Swap restic's key for one with cheap key derivation (same
		// password and master key), so that each of the many restic
		// commands opens the repository in milliseconds.
		r := openRepo(t, b.dir)
		if _, err := r.ChangePassword(context.Background(), testPassword, repo.KeyOptions{Username: "test", Hostname: "test", Params: &crypto.TestParams}); err != nil {
			t.Fatal(err)
		}
		o.Backup(b.dir, []string{"."}, "--host", repairHost)
		writeFiles(t, b.src, second)
		o.Backup(b.dir, []string{"."}, "--host", repairHost)
	case "cairn":
		b.dir = newRepo(t)
		r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword).inDir(b.src)
		r.ok("-r", b.dir, "--no-cache", "backup", "--host", repairHost, ".")
		writeFiles(t, b.src, second)
		r.ok("-r", b.dir, "--no-cache", "backup", "--host", repairHost, ".")
	default:
		t.Fatalf("unknown maker %q", maker)
	}
	return b
}

// repoFiles lists the files of one type directory (relative names).
func repairTypeFiles(t *testing.T, dir, typ string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, typ), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func repairPackFile(id blob.ID) string { return "data/" + id.String()[:2] + "/" + id.String() }

// repairFlipBlob flips one byte in the middle of a stored blob.
func repairFlipBlob(t *testing.T, dir string, r *repo.Repository, h blob.Handle) {
	t.Helper()
	locs := r.Index().Lookup(h)
	if len(locs) != 1 {
		t.Fatalf("%v stored %d times", h, len(locs))
	}
	p := filepath.Join(dir, repairPackFile(locs[0].Pack))
	os.Chmod(p, 0o600)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[int(locs[0].Offset)+int(locs[0].Length)/2] ^= 0x01
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

type repairSnapInfo struct {
	ID       string   `json:"id"`
	Tree     string   `json:"tree"`
	Original string   `json:"original"`
	Tags     []string `json:"tags"`
	Time     string   `json:"time"`
}

// repairSnapshotTrees maps each snapshot to its tree: a repaired one by its
// original's ID (the new IDs differ between two repairs, the rest must not).
func repairSnapshotTrees(t *testing.T, dir string) map[string]string {
	t.Helper()
	var list []repairSnapInfo
	oracleFor(t).RunJSON(dir, &list, "snapshots", "--json")
	out := map[string]string{}
	for _, s := range list {
		key := s.ID
		if s.Original != "" {
			key = "repaired " + s.Original + " tags " + strings.Join(s.Tags, ",")
		}
		out[key] = s.Tree
	}
	return out
}

// repairCounterLine is one of restic's progress counters, which cairn does not
// print.
var repairCounterLine = regexp.MustCompile(`^\[\d+:\d+\] `)

// repairMessageLines returns the non-empty lines of out as a sorted set, without
// progress counters and with new snapshot IDs masked (they differ between any
// two repairs).
func repairMessageLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == "" || repairCounterLine.MatchString(l) {
			continue
		}
		if strings.HasPrefix(l, "saved new snapshot ") {
			l = "saved new snapshot ID"
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return lines
}

func TestRepairLikeRestic(t *testing.T) {
	t.Parallel()
	for _, maker := range []string{"restic", "cairn"} {
		t.Run(maker, func(t *testing.T) {
			testRepairLikeRestic(t, maker)
		})
	}
}

func testRepairLikeRestic(t *testing.T, maker string) {
	b := newRepairBase(t, maker)
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)

	// Find what to damage with the library.
	lib := openRepo(t, b.dir)
	ctx := context.Background()
	if err := lib.LoadIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	newLocs := lib.Index().Lookup(blob.Handle{ID: b.newBlob, Type: blob.DataBlob})
	if len(newLocs) != 1 {
		t.Fatalf("c/new stored %d times", len(newLocs))
	}
	newPack := newLocs[0].Pack
	var indexOfOld string // an index file that does not list newPack
	for _, f := range repairTypeFiles(t, b.dir, "index") {
		id, _ := blob.ParseID(filepath.Base(f))
		idx, err := lib.LoadIndexFile(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(idx.Packs, func(p index.PackEntry) bool { return p.ID == newPack }) {
			indexOfOld = f
		}
	}
	if indexOfOld == "" {
		t.Fatalf("no index file without pack %s: %v", newPack.Str(), repairTypeFiles(t, b.dir, "index"))
	}
	sns, err := lib.Snapshots(ctx, nil)
	if err != nil || len(sns) != 2 {
		t.Fatalf("snapshots %v %v", sns, err)
	}
	root2 := *sns[1].Tree
	rootTree, err := lib.LoadTree(ctx, *sns[0].Tree)
	if err != nil {
		t.Fatal(err)
	}
	dirA := *rootTree.Find("a").Subtree // shared by both snapshots

	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		// readData: whether restic check --read-data is clean after the
		// repair (a damaged blob stays in its pack until prune).
		readData bool
		// repaired: snapshots saved anew (an unreadable root is
		// removed instead).
		repaired int
	}{
		{"index-deleted", func(t *testing.T, dir string) {
			for _, f := range repairTypeFiles(t, dir, "index") {
				if err := os.Remove(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
		}, true, 0},
		{"data-pack-deleted-and-pack-unindexed", func(t *testing.T, dir string) {
			// The index lists a pack that is gone, and the packs of the
			// first backup are in no index.
			for _, f := range []string{repairPackFile(newPack), indexOfOld} {
				if err := os.Remove(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
		}, true, 1},
		{"tree-blobs-flipped", func(t *testing.T, dir string) {
			// dir a (in both snapshots) becomes unreadable, and so
			// does the root of the second snapshot.
			repairFlipBlob(t, dir, lib, blob.Handle{ID: dirA, Type: blob.TreeBlob})
			repairFlipBlob(t, dir, lib, blob.Handle{ID: root2, Type: blob.TreeBlob})
		}, false, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			withRestic, withCairn := b.copyRepo(t), b.copyRepo(t)
			// One oracle, with its own cache, per copy: the copies share
			// the repository ID and so would share cached tree packs,
			// hiding the damage from restic.
			oR, oC := oracleFor(t), oracleFor(t)
			c.damage(t, withRestic)
			c.damage(t, withCairn)

			ri := oR.Run(withRestic, "repair", "index")
			ci := r.run("-r", withCairn, "--no-cache", "repair", "index")
			noPanic(t, ci)
			if ri.ExitCode != 0 || ci.code != 0 {
				t.Fatalf("repair index: restic exit %d, cairn %s\nrestic:\n%s", ri.ExitCode, ci, ri.Output())
			}
			if got, want := repairMessageLines(ci.stdout), repairMessageLines(string(ri.Stdout)); !slices.Equal(got, want) {
				t.Errorf("repair index output %q, restic %q", got, want)
			}
			if got, want := repairMessageLines(ci.stderr), repairMessageLines(string(ri.Stderr)); !slices.Equal(got, want) {
				t.Errorf("repair index warnings %q, restic %q", got, want)
			}
			// Both indexes hold the same blobs (restic list blobs
			// reads the index).
			listBlobs := func(dir string) []string {
				lines := strings.Fields(string(oracleFor(t).MustRun(dir, "--no-cache", "list", "blobs").Stdout))
				slices.Sort(lines)
				return lines
			}
			if got, want := listBlobs(withCairn), listBlobs(withRestic); !slices.Equal(got, want) {
				t.Errorf("after repair index cairn's index lists %d words, restic's %d", len(got), len(want))
			}
			if c.name != "tree-blobs-flipped" && !strings.Contains(ci.stderr, "adding pack file to index") {
				t.Errorf("repair index added no pack:\n%s", ci)
			}
			if n := len(repairTypeFiles(t, withCairn, "index")); n != 1 {
				t.Errorf("cairn wrote %d index files, want 1", n)
			}

			// A dry run says the same as restic's and writes nothing.
			before := repoState(t, withCairn)
			rd := oR.Run(withRestic, "repair", "snapshots", "--forget", "--dry-run")
			cd := r.run("-r", withCairn, "--no-cache", "repair", "snapshots", "--forget", "--dry-run")
			if rd.ExitCode != 0 || cd.code != 0 {
				t.Fatalf("repair snapshots --dry-run: restic exit %d, cairn %s\nrestic:\n%s", rd.ExitCode, cd, rd.Output())
			}
			if got, want := repairMessageLines(cd.stdout), repairMessageLines(string(rd.Stdout)); !slices.Equal(got, want) {
				t.Errorf("repair snapshots --dry-run output\n%q\nrestic\n%q", got, want)
			}
			if diffs := diffState(before, repoState(t, withCairn)); len(diffs) > 0 {
				t.Errorf("repair snapshots --dry-run changed the repository: %v", diffs)
			}

			rs := oR.Run(withRestic, "repair", "snapshots", "--forget")
			cs := r.run("-r", withCairn, "--no-cache", "repair", "snapshots", "--forget")
			noPanic(t, cs)
			if rs.ExitCode != 0 || cs.code != 0 {
				t.Fatalf("repair snapshots: restic exit %d, cairn %s\nrestic:\n%s", rs.ExitCode, cs, rs.Output())
			}
			if got, want := repairMessageLines(cs.stdout), repairMessageLines(string(rs.Stdout)); !slices.Equal(got, want) {
				t.Errorf("repair snapshots output\n%q\nrestic\n%q", got, want)
			}
			if cs.stderr != "" {
				t.Errorf("repair snapshots warnings: %s", cs.stderr)
			}
			gotTrees, wantTrees := repairSnapshotTrees(t, withCairn), repairSnapshotTrees(t, withRestic)
			if !maps.Equal(gotTrees, wantTrees) {
				t.Errorf("snapshots and trees after repair:\ncairn  %v\nrestic %v", gotTrees, wantTrees)
			}
			repaired := 0
			for k := range gotTrees {
				if strings.HasPrefix(k, "repaired ") {
					repaired++
				}
			}
			if repaired != c.repaired {
				t.Errorf("%d repaired snapshots: %v", repaired, gotTrees)
			}
			if got, want := listBlobs(withCairn), listBlobs(withRestic); !slices.Equal(got, want) {
				t.Errorf("after repair snapshots cairn's index lists %d words, restic's %d", len(got), len(want))
			}

			oC.MustCheck(withCairn, c.readData)
			// restic restores every snapshot left; what was not damaged
			// comes back exactly.
			var left []repairSnapInfo
			oC.RunJSON(withCairn, &left, "snapshots", "--json")
			for _, s := range left {
				target := t.TempDir()
				oC.Restore(withCairn, s.ID, target)
				got, err := os.ReadFile(filepath.Join(target, "b", "small"))
				if err != nil || string(got) != "small file\n" {
					t.Errorf("snapshot %s: b/small restored as %q, %v", s.ID[:8], got, err)
				}
				f1, err := os.ReadFile(filepath.Join(target, "a", "f1"))
				switch c.name {
				case "tree-blobs-flipped":
					if err == nil {
						t.Errorf("snapshot %s: a/f1 restored from a damaged dir", s.ID[:8])
					}
				default:
					if !bytes.Equal(f1, repairSeeded("f1", 200<<10)) {
						t.Errorf("snapshot %s: a/f1 differs (%d bytes, %v)", s.ID[:8], len(f1), err)
					}
				}
				if c.name == "data-pack-deleted-and-pack-unindexed" {
					if fi, err := os.Stat(filepath.Join(target, "c", "new")); err == nil && fi.Size() != 0 {
						t.Errorf("snapshot %s: c/new restored with %d bytes from a deleted pack", s.ID[:8], fi.Size())
					}
				}
			}
		})
	}
}

// check with snapshot IDs or filters (restic 0.19.1 accepts both) walks only
// those snapshots and, with --read-data, reads only their packs: damage in a
// pack that only the second snapshot uses is found when that snapshot is
// checked and not when the first one is, by restic and cairn alike.
func TestCheckSelectedSnapshots(t *testing.T) {
	b := newRepairBase(t, "cairn")
	lib := openRepo(t, b.dir)
	ctx := context.Background()
	if err := lib.LoadIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sns, err := lib.Snapshots(ctx, nil)
	if err != nil || len(sns) != 2 {
		t.Fatalf("snapshots %v %v", sns, err)
	}
	first, second := sns[0].ID().String(), sns[1].ID().String()
	repairFlipBlob(t, b.dir, lib, blob.Handle{ID: b.newBlob, Type: blob.DataBlob})
	damaged := lib.Index().Lookup(blob.Handle{ID: b.newBlob, Type: blob.DataBlob})[0].Pack.String()

	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	o := oracleFor(t)
	for _, c := range []struct {
		args []string
		want int
		// heading: the read-data line, "" when none is expected.
		heading string
	}{
		{[]string{first[:8]}, 0, "read all filtered data"},
		{[]string{second}, 1, "read all filtered data"},
		{[]string{"--host", repairHost, "--path", b.src}, 1, "read all filtered data"},
		{[]string{"--host", "elsewhere"}, 0, "read all filtered data"},
		{[]string{"latest", "--host", repairHost}, 1, "read all filtered data"},
		{[]string{"ffffffff"}, 1, ""},
		{nil, 1, "read all data"},
	} {
		args := append([]string{"--no-cache", "check", "--read-data"}, c.args...)
		rr := o.Run(b.dir, args...)
		cr := r.run(append([]string{"-r", b.dir}, args...)...)
		noPanic(t, cr)
		if rr.ExitCode != c.want || cr.code != c.want {
			t.Errorf("check %v: restic exit %d, cairn %d, want %d\n%s\nrestic:\n%s", c.args, rr.ExitCode, cr.code, c.want, cr, rr.Output())
			continue
		}
		if named := strings.Contains(cr.stderr, damaged); named != (c.want == 1 && c.heading != "") {
			t.Errorf("check %v names the damaged pack: %v\n%s", c.args, named, cr)
		}
		if c.heading != "" && !strings.Contains(cr.stdout, c.heading+"\n") {
			t.Errorf("check %v: no %q\n%s", c.args, c.heading, cr)
		}
		if strings.Contains(string(rr.Stderr), damaged) != strings.Contains(cr.stderr, damaged) {
			t.Errorf("check %v: restic and cairn disagree about naming %s\ncairn %s\nrestic:\n%s", c.args, damaged[:8], cr, rr.Output())
		}
	}
}
