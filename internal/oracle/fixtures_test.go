package oracle_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/internal/fixtures"
	"github.com/cairn-backup/cairn/internal/oracle"
)

var (
	update = flag.Bool("update", false, "regenerate testdata/fixtures with restic (see TestFixtures)")
	full   = flag.Bool("full", false, "TestFixtures: compare every listing with a complete restic description")
)

// fixtureSpec says how the generator makes one fixture.
type fixtureSpec struct {
	name        string
	description string
	version     int
	compression string
	passwords   []string
	snapshots   int
}

var fixtureSpecs = []fixtureSpec{
	{fixtures.V1, "repository v1", 1, "", []string{"test"}, 1},
	{fixtures.V2Auto, "repository v2, backup with --compression auto", 2, "auto", []string{"test"}, 1},
	{fixtures.V2Off, "repository v2, backup with --compression off", 2, "off", []string{"test"}, 1},
	{fixtures.V2Max, "repository v2, backup with --compression max", 2, "max", []string{"test"}, 1},
	{fixtures.TwoKeys, "repository v2 (--compression auto) with a second key added by restic key add", 2, "auto", []string{"test", "second"}, 1},
	{fixtures.TwoSnapshots, "repository v2 (--compression auto): a backup, then fixtures.ModifyTree and a second backup whose parent is the first", 2, "auto", []string{"test"}, 2},
}

const (
	fixtureHost  = "cairn-fixtures"
	fixtureTag   = "fixture"
	fixtureTime1 = "2024-03-04 05:06:07" // --time, read in TZ=UTC
	fixtureTime2 = "2024-03-05 05:06:07"
)

// TestFixtures verifies every fixture under testdata/fixtures against
// restic: the archive unpacks to a repository that passes check --read-data,
// and the keys, snapshots and file contents restic reports match the
// listing. With -full the whole listing (trees, blob IDs, index entries) is
// compared with a fresh description; with -update the fixtures made from
// fixtures.MakeTree are regenerated first, and the golden listings rewritten:
//
//	go test ./internal/oracle -run TestFixtures -update
func TestFixtures(t *testing.T) {
	if *update {
		for _, s := range fixtureSpecs {
			t.Run("generate/"+s.name, func(t *testing.T) { generateFixture(t, s) })
		}
		describeGolden(t, fixtures.GoldenV1, "v1", 1)
		describeGolden(t, fixtures.GoldenV2, "v2", 2)
	}
	names, err := fixtures.Names()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fixtures.GoldenV1, fixtures.GoldenV2, fixtures.TwoKeys, fixtures.TwoSnapshots,
		fixtures.V1, fixtures.V2Auto, fixtures.V2Max, fixtures.V2Off}
	if !slices.Equal(names, want) {
		t.Fatalf("fixtures = %q, want %q", names, want)
	}
	for _, name := range names {
		t.Run("verify/"+name, func(t *testing.T) { verifyFixture(t, name) })
	}
}

func generateFixture(t *testing.T, s fixtureSpec) {
	// A fixed source location keeps the snapshot paths in the listings
	// stable from one generation to the next.
	tmp := filepath.Join(os.TempDir(), "cairn-fixtures")
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	src := filepath.Join(tmp, "data")
	if err := fixtures.MakeTree(src); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(t.TempDir(), s.name)
	r := oracle.New(t).InDir(tmp)
	r.Init(repo, s.version)

	args := []string{"--host", fixtureHost, "--tag", fixtureTag, "--time", fixtureTime1}
	if s.compression != "" {
		args = append(args, "--compression", s.compression)
	}
	first := r.Backup(repo, []string{"data"}, args...)
	if first.FilesNew != 8 || first.DataBlobs != 7 {
		t.Fatalf("first backup: %+v, want 8 new files in 7 data blobs", first)
	}
	if s.snapshots == 2 {
		if err := fixtures.ModifyTree(src); err != nil {
			t.Fatal(err)
		}
		args[5] = fixtureTime2
		second := r.Backup(repo, []string{"data"}, args...)
		if second.FilesNew != 1 || second.FilesChanged != 1 || second.FilesUnmodified != 6 || second.DataBlobs != 2 {
			t.Fatalf("second backup: %+v, want 1 new, 1 changed, 6 unmodified files, 2 data blobs", second)
		}
	}
	for _, pw := range s.passwords[1:] {
		r.KeyAdd(repo, pw, "--user", "fixture", "--host", fixtureHost)
	}
	r.MustCheck(repo, true)
	target := t.TempDir()
	r.Restore(repo, "latest", target)
	compareTrees(t, src, filepath.Join(target, "data"))

	l := r.Describe(repo, s.passwords...)
	l.Name, l.Description, l.Compression = s.name, s.description, s.compression
	l.Archive, l.Root = "fixtures/"+s.name+".tar.gz", s.name
	checkGenerated(t, &l, s)

	dir, err := fixtures.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if err := fixtures.WriteArchive(filepath.Join(dir, s.name+".tar.gz"), repo, s.name); err != nil {
		t.Fatal(err)
	}
	writeListing(t, &l)
}

// checkGenerated asserts what the generator promises about every fixture.
func checkGenerated(t *testing.T, l *fixtures.Listing, s fixtureSpec) {
	t.Helper()
	if len(l.Snapshots) != s.snapshots || len(l.Keys) != len(s.passwords) || l.Config.Version != uint(s.version) {
		t.Fatalf("%s: %d snapshots, %d keys, version %d; want %d, %d, %d",
			s.name, len(l.Snapshots), len(l.Keys), l.Config.Version, s.snapshots, len(s.passwords), s.version)
	}
	if s.snapshots == 2 && l.Snapshots[1].Parent != l.Snapshots[0].ID {
		t.Errorf("%s: second snapshot's parent is %q, want %s", s.name, l.Snapshots[1].Parent, l.Snapshots[0].ID)
	}
	// The forced chunk boundary: big.bin is two blobs, cut at BigFileCut.
	content := fixtures.BigFileContent()
	h1, h2 := sha256.Sum256(content[:fixtures.BigFileCut]), sha256.Sum256(content[fixtures.BigFileCut:])
	wantBlobs := []string{hex.EncodeToString(h1[:]), hex.EncodeToString(h2[:])}
	for _, sn := range l.Snapshots {
		big := sn.Node("data/" + fixtures.BigFile)
		if big == nil || !slices.Equal(big.Content, wantBlobs) {
			t.Errorf("%s: big.bin = %+v, want content %q", s.name, big, wantBlobs)
		}
	}
}

// describeGolden writes the listing of a golden repository of the format
// specification (testdata/golden, copied from ../shared/spec/testdata).
func describeGolden(t *testing.T, name, root string, version uint) {
	t.Run("generate/"+name, func(t *testing.T) {
		l := &fixtures.Listing{Name: name, Archive: "golden/restic-0.19.1-golden-repos.tar.gz", Root: root}
		repo, err := fixtures.UnpackTo(l, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		d := oracle.New(t).Describe(repo, fixtures.Password)
		d.Name, d.Archive, d.Root = l.Name, l.Archive, l.Root
		d.Description = "golden repository of the format specification (see testdata/golden/golden-manifest.md)"
		if d.Config.Version != version {
			t.Fatalf("%s: version %d, want %d", name, d.Config.Version, version)
		}
		writeListing(t, &d)
	})
}

func writeListing(t *testing.T, l *fixtures.Listing) {
	t.Helper()
	data, err := json.MarshalIndent(l, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := fixtures.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, l.Name+".json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func verifyFixture(t *testing.T, name string) {
	repo, l := fixtures.Unpack(t, name)
	r := oracle.New(t).WithPassword(l.Password)
	r.MustCheck(repo, true)

	if *full {
		d := r.Describe(repo, passwords(l)...)
		d.Name, d.Description, d.Archive, d.Root, d.Compression = l.Name, l.Description, l.Archive, l.Root, l.Compression
		got, _ := json.MarshalIndent(d, "", " ")
		want, _ := json.MarshalIndent(l, "", " ")
		if !bytes.Equal(got, want) {
			t.Errorf("restic describes %s differently from its listing:\n%s", name, got)
		}
		return
	}

	if cfg := r.CatConfig(repo); cfg.ID != l.Config.ID || cfg.Version != l.Config.Version || cfg.ChunkerPolynomial != l.Config.ChunkerPolynomial {
		t.Errorf("config = %+v, listing says %+v", cfg, l.Config)
	}
	for _, k := range l.Keys {
		keys := r.WithPassword(k.Password).KeyList(repo)
		if !slices.ContainsFunc(keys, func(rk oracle.Key) bool { return rk.Current && rk.ID == k.ID }) {
			t.Errorf("password %q does not open key %s: %+v", k.Password, k.ID, keys)
		}
	}
	snaps := r.Snapshots(repo)
	if len(snaps) != len(l.Snapshots) {
		t.Fatalf("restic lists %d snapshots, listing has %d", len(snaps), len(l.Snapshots))
	}
	for i, sn := range snaps {
		ls := l.Snapshots[i]
		if sn.ID != ls.ID || sn.Tree != ls.Tree || sn.Parent != ls.Parent || !sn.Time.Equal(ls.Time) ||
			!slices.Equal(sn.Paths, ls.Paths) || sn.Hostname != ls.Hostname {
			t.Errorf("snapshot %d: restic says %+v, listing says %+v", i, sn, ls)
		}
		verifyContents(t, r, repo, &ls)
	}
}

// verifyContents restores the snapshot with restic and compares every
// regular file's size and SHA-256 with the listing.
func verifyContents(t *testing.T, r *oracle.Restic, repo string, sn *fixtures.Snapshot) {
	t.Helper()
	target := t.TempDir()
	var args []string
	for _, n := range sn.Nodes {
		if n.Type == "dev" || n.Type == "chardev" { // creating device nodes needs root
			p, err := n.RealPath()
			if err != nil {
				t.Fatal(err)
			}
			args = append(args, "--exclude", "/"+p)
		}
	}
	r.Restore(repo, sn.ID, target, args...)
	files := sn.Files()
	if len(files) == 0 {
		t.Fatalf("snapshot %s lists no files", sn.ID)
	}
	for _, n := range files {
		p, err := n.RealPath()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(p)))
		if err != nil {
			t.Errorf("restored %s: %v", n.Path, err)
			continue
		}
		sum := sha256.Sum256(data)
		if uint64(len(data)) != n.Size || hex.EncodeToString(sum[:]) != n.SHA256 {
			t.Errorf("restored %s: %d bytes, sha256 %x; listing says %d bytes, %s", n.Path, len(data), sum, n.Size, n.SHA256)
		}
	}
}

func passwords(l *fixtures.Listing) []string {
	var pws []string
	for _, k := range l.Keys {
		pws = append(pws, k.Password)
	}
	return pws
}
