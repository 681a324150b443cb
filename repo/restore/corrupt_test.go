package restore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/repo/tree"
)

// corruptFixture is a small data set backed up into a local repository
// with compression off and small packs, so that it spans several packs and
// a blob's bytes on disk are its sealed plaintext.
type corruptFixture struct {
	src     string
	repoDir string
	// files maps each file's path in the snapshot ("/a/b") to its blobs.
	files map[string][]blob.ID
}

func newCorruptFixture(t *testing.T) *corruptFixture {
	t.Helper()
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 8))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write := func(name string, data []byte) {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		write(fmt.Sprintf("small/f%02d", i), random(150<<10+i))
	}
	write("big/a.bin", random(3<<20))
	write("big/b.bin", random(5<<20+17))
	shared := random(100 << 10)
	write("dup/one", shared)
	write("dup/two", shared)
	write("zeros", make([]byte, 2<<20))
	write("empty", nil)

	r, dir := newRepo(t, true, repo.InitOptions{})
	if err := r.SetOptions(repo.Options{Compression: repo.CompressionOff, PackSize: repo.MinPackSize}); err != nil {
		t.Fatal(err)
	}
	sn := backupDir(t, r, src)
	fx := &corruptFixture{src: src, repoDir: dir, files: map[string][]blob.ID{}}
	var walk func(id blob.ID, prefix string)
	walk = func(id blob.ID, prefix string) {
		tr, err := r.LoadTree(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tr.Nodes() {
			switch n.Type {
			case tree.TypeDir:
				walk(*n.Subtree, prefix+"/"+n.Name)
			case tree.TypeFile:
				fx.files[prefix+"/"+n.Name] = n.Content
			}
		}
	}
	walk(*sn.Tree, "")
	return fx
}

// copyRepo gives a test its own copy of the repository to damage.
func (fx *corruptFixture) copyRepo(t *testing.T) (string, *repo.Repository) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	copyTree(t, fx.repoDir, dir)
	r := openLocal(t, dir)
	if err := r.LoadIndex(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return dir, r
}

// dataPacks returns the data blobs of every pack, by pack, sorted by
// offset, and the packs sorted by ID.
func dataPacks(r *repo.Repository) (map[blob.ID][]index.Location, []blob.ID) {
	byPack := map[blob.ID][]index.Location{}
	r.Index().Each(func(l index.Location) bool {
		if l.Type == blob.DataBlob {
			byPack[l.Pack] = append(byPack[l.Pack], l)
		}
		return true
	})
	var packs []blob.ID
	for id, ls := range byPack {
		sort.Slice(ls, func(i, j int) bool { return ls[i].Offset < ls[j].Offset })
		packs = append(packs, id)
	}
	sort.Slice(packs, func(i, j int) bool { return packs[i].String() < packs[j].String() })
	return byPack, packs
}

func packPath(dir string, id blob.ID) string {
	s := id.String()
	return filepath.Join(dir, "data", s[:2], s)
}

// A flipped byte, a truncated pack and a missing pack each lose some
// blobs. The restore goes on: exactly the files that use a lost blob are
// reported, each with the pack and a lost blob, none of them looks
// complete (its mtime is not the snapshot's), and every other file is
// restored exactly.
func TestRestoreDamagedPacks(t *testing.T) {
	fx := newCorruptFixture(t)
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, dir string, r *repo.Repository) (blob.ID, map[blob.ID]bool)
	}{
		{"flipped-byte", func(t *testing.T, dir string, r *repo.Repository) (blob.ID, map[blob.ID]bool) {
			byPack, packs := dataPacks(r)
			pack := packs[0]
			victim := byPack[pack][len(byPack[pack])/2]
			flipByte(t, packPath(dir, pack), int64(victim.Offset)+int64(victim.Length)/2)
			return pack, map[blob.ID]bool{victim.ID: true}
		}},
		{"wrong-hash", func(t *testing.T, dir string, r *repo.Repository) (blob.ID, map[blob.ID]bool) {
			// A blob whose MAC is right but whose plaintext is not what
			// its ID says: only the hash check can catch it.
			byPack, packs := dataPacks(r)
			pack := packs[len(packs)-1]
			victim := byPack[pack][0]
			resealBlob(t, r, packPath(dir, pack), victim)
			return pack, map[blob.ID]bool{victim.ID: true}
		}},
		{"truncated", func(t *testing.T, dir string, r *repo.Repository) (blob.ID, map[blob.ID]bool) {
			// The pack with the most blobs: those before the cut must be
			// saved.
			byPack, packs := dataPacks(r)
			pack := slices.MaxFunc(packs, func(a, b blob.ID) int { return len(byPack[a]) - len(byPack[b]) })
			ls := byPack[pack]
			cut := ls[len(ls)/2]
			if err := os.Truncate(packPath(dir, pack), int64(cut.Offset)+10); err != nil {
				t.Fatal(err)
			}
			lost := map[blob.ID]bool{}
			for _, l := range ls[len(ls)/2:] {
				lost[l.ID] = true
			}
			return pack, lost
		}},
		{"missing", func(t *testing.T, dir string, r *repo.Repository) (blob.ID, map[blob.ID]bool) {
			byPack, packs := dataPacks(r)
			pack := packs[1]
			if err := os.Remove(packPath(dir, pack)); err != nil {
				t.Fatal(err)
			}
			lost := map[blob.ID]bool{}
			for _, l := range byPack[pack] {
				lost[l.ID] = true
			}
			return pack, lost
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, r := fx.copyRepo(t)
			if _, packs := dataPacks(r); len(packs) < 3 {
				t.Fatalf("only %d data packs", len(packs))
			}
			pack, lost := c.damage(t, dir, r)
			var affected []string
			for p, content := range fx.files {
				if slices.ContainsFunc(content, func(id blob.ID) bool { return lost[id] }) {
					affected = append(affected, p)
				}
			}
			t.Logf("%d lost blobs, %d of %d files affected", len(lost), len(affected), len(fx.files))
			if len(affected) == 0 || len(affected) == len(fx.files) {
				t.Fatalf("%d of %d files affected: a useless test", len(affected), len(fx.files))
			}
			sn, _, err := r.FindSnapshot(context.Background(), "latest", nil)
			if err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(t.TempDir(), "t")
			res, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target})
			if !errors.Is(err, restore.ErrIncomplete) {
				t.Fatalf("error %v, want ErrIncomplete", err)
			}
			var reported []string
			for _, f := range res.Failures {
				reported = append(reported, f.Path)
				var be *restore.BlobError
				if !errors.As(f.Err, &be) || be.Pack != pack || !lost[be.Blob] {
					t.Errorf("%s: %v: want a BlobError naming pack %s and a lost blob", f.Path, f.Err, pack.Str())
				}
			}
			slices.Sort(reported)
			slices.Sort(affected)
			if !slices.Equal(reported, affected) {
				t.Errorf("reported %q, want %q", reported, affected)
			}
			if res.FilesRestored != int64(len(fx.files)-len(affected)) {
				t.Errorf("%d files restored, want %d", res.FilesRestored, len(fx.files)-len(affected))
			}
			ignore := map[string]bool{}
			for _, p := range affected {
				rel := p[1:]
				ignore[rel] = true
				if fi, err := os.Stat(filepath.Join(target, rel)); err == nil {
					orig, _ := os.Stat(filepath.Join(fx.src, rel))
					if fi.ModTime().Equal(orig.ModTime()) {
						t.Errorf("%s was not restored but has the snapshot's mtime", p)
					}
				}
			}
			opts := compareOpts()
			opts.Ignore = func(p string) bool { return ignore[p] || p == "" }
			testtree.Compare(t, fx.src, target, opts)
		})
	}
}

func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// resealBlob replaces a stored (uncompressed) blob with a validly sealed
// box of different plaintext of the same length.
func resealBlob(t *testing.T, r *repo.Repository, p string, l index.Location) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sealed := make([]byte, l.Length)
	if _, err := f.ReadAt(sealed, int64(l.Offset)); err != nil {
		t.Fatal(err)
	}
	plain, err := r.Key().Open(nil, sealed)
	if err != nil {
		t.Fatal(err)
	}
	plain[0] ^= 1
	if _, err := f.WriteAt(r.Key().Seal(nil, plain), int64(l.Offset)); err != nil {
		t.Fatal(err)
	}
}
