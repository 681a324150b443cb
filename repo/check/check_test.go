package check_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/check"
	"github.com/cairn-backup/cairn/repo/tree"
)

// fixture writes a snapshot of /sub/file.txt (two data blobs, each blob in
// a pack of its own) and returns the repository's backend,
// the snapshot ID and the ID of the second data blob.
func fixture(fatal func(...any)) (*mem.Backend, blob.ID, blob.ID) {
	ctx := context.Background()
	be := mem.New()
	r, err := repo.Init(ctx, be, "pw", repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		fatal(err)
	}
	save := func(typ blob.Type, data []byte) blob.ID {
		w, err := r.NewBlobWriter(ctx)
		if err != nil {
			fatal(err)
		}
		id := blob.Hash(data)
		if _, err := w.SaveBlob(ctx, typ, data, id); err != nil {
			fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			fatal(err)
		}
		return id
	}
	d1 := save(blob.DataBlob, []byte("first chunk"))
	d2 := save(blob.DataBlob, []byte("second chunk, in a pack of its own"))
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	enc := func(nodes ...*tree.Node) []byte {
		buf, err := tree.Encode(nodes)
		if err != nil {
			fatal(err)
		}
		return buf
	}
	sub := save(blob.TreeBlob, enc(&tree.Node{Name: "file.txt", Type: tree.TypeFile, Mode: 0o644, ModTime: now, AccessTime: now, ChangeTime: now, Content: []blob.ID{d1, d2}}))
	root := save(blob.TreeBlob, enc(&tree.Node{Name: "sub", Type: tree.TypeDir, Mode: fs.ModeDir | 0o755, ModTime: now, AccessTime: now, ChangeTime: now, Subtree: &sub}))
	snID, err := r.SaveSnapshot(ctx, &repo.Snapshot{Time: now, Tree: &root, Paths: []string{"/"}})
	if err != nil {
		fatal(err)
	}
	return be, snID, d2
}

func open(t testing.TB, be backend.Backend) *repo.Repository {
	r, err := repo.Open(context.Background(), be, "pw", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func run(t *testing.T, be backend.Backend, opts check.Options) (*check.Report, []check.Problem) {
	t.Helper()
	var got []check.Problem
	rep, err := check.Run(context.Background(), open(t, be), opts, func(p check.Problem) { got = append(got, p) })
	if err != nil {
		t.Fatal(err)
	}
	return rep, got
}

func TestCleanRepository(t *testing.T) {
	be, _, _ := fixture(t.Fatal)
	for _, readData := range []bool{false, true} {
		rep, probs := run(t, be, check.Options{ReadData: readData})
		if !rep.OK() || rep.Hints != 0 || len(probs) != 0 {
			t.Errorf("read-data %v: report %+v, problems %v", readData, rep, probs)
		}
		if readData && rep.PacksRead != 4 {
			t.Errorf("read %d packs, want 4", rep.PacksRead)
		}
	}
}

// A pack removed from the backend: the pack stage names it, the structure
// stage names the snapshot, the path and the missing blob.
func TestMissingPackNamesSnapshotAndPath(t *testing.T) {
	be, snID, d2 := fixture(t.Fatal)
	r := open(t, be)
	if err := r.LoadIndex(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	loc := r.Index().Lookup(blob.Handle{ID: d2, Type: blob.DataBlob})[0]
	if err := be.Remove(context.Background(), backend.Handle{Type: backend.PackFile, Name: loc.Pack.String()}); err != nil {
		t.Fatal(err)
	}
	rep, probs := run(t, be, check.Options{})
	if rep.OK() {
		t.Fatalf("missing pack not reported: %v", probs)
	}
	var packErr bool
	for _, p := range probs {
		if p.Kind == check.KindPack && p.Pack == loc.Pack && strings.Contains(p.Error(), "does not exist") {
			packErr = true
		}
	}
	if !packErr {
		t.Errorf("no problem names pack %v as missing: %v", loc.Pack, probs)
	}

	// Now delete every index file: all blobs are unindexed, packs orphaned.
	_ = be.List(context.Background(), backend.IndexFile, func(fi backend.FileInfo) error {
		return be.Remove(context.Background(), backend.Handle{Type: backend.IndexFile, Name: fi.Name})
	})
	rep, probs = run(t, be, check.Options{ReadData: true})
	if rep.OK() || rep.OrphanedPacks != 3 {
		t.Fatalf("report %+v: %v", rep, probs)
	}
	var treeErr *check.Problem
	for i, p := range probs {
		if p.Kind == check.KindTree {
			treeErr = &probs[i]
		}
	}
	if treeErr == nil || treeErr.Snapshot != snID || treeErr.Path != "/" || !strings.Contains(treeErr.Error(), "not found in repository") {
		t.Errorf("want a tree problem for snapshot %v at /: %+v", snID.Str(), treeErr)
	}
}

// A data blob whose index entry is gone: the tree problem names the
// snapshot, the directory path and the file.
func TestUnindexedBlobNamesPath(t *testing.T) {
	be, snID, d2 := fixture(t.Fatal)
	r := open(t, be)
	if err := r.LoadIndex(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	loc := r.Index().Lookup(blob.Handle{ID: d2, Type: blob.DataBlob})[0]
	files := r.Index().IndexFilesOf(loc.Pack)
	if len(files) != 1 {
		t.Fatalf("pack in %d index files", len(files))
	}
	if err := be.Remove(context.Background(), backend.Handle{Type: backend.IndexFile, Name: files[0].String()}); err != nil {
		t.Fatal(err)
	}
	rep, probs := run(t, be, check.Options{})
	if rep.OK() || rep.Errors != 1 || rep.OrphanedPacks != 1 || rep.Hints != 1 {
		t.Fatalf("report %+v: %v", rep, probs)
	}
	p := probs[len(probs)-1]
	want := fmt.Sprintf("file %q blob %v not found in index", "file.txt", d2)
	if p.Kind != check.KindTree || p.Snapshot != snID || p.Path != "/sub" || !strings.Contains(p.Error(), want) {
		t.Errorf("got %+v (%v), want a tree problem at /sub of %v saying %s", p, p.Error(), snID.Str(), want)
	}
}

// Flipped data in a pack passes the structural check, as in restic, and
// fails --read-data naming the pack.
func TestReadDataFindsFlippedByte(t *testing.T) {
	be, _, d2 := fixture(t.Fatal)
	r := open(t, be)
	if err := r.LoadIndex(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	loc := r.Index().Lookup(blob.Handle{ID: d2, Type: blob.DataBlob})[0]
	h := backend.Handle{Type: backend.PackFile, Name: loc.Pack.String()}
	flipInPack(t, be, h, int(loc.Offset)+20)
	if rep, probs := run(t, be, check.Options{}); !rep.OK() {
		t.Errorf("structural check fails on flipped data: %v", probs)
	}
	rep, probs := run(t, be, check.Options{ReadData: true})
	if rep.OK() || len(rep.BrokenPacks) != 1 || rep.BrokenPacks[0] != loc.Pack {
		t.Fatalf("report %+v, problems %v", rep, probs)
	}
	if !strings.Contains(probs[0].Error(), "unexpected pack id") || !strings.Contains(probs[0].Error(), "ciphertext verification failed") {
		t.Errorf("message: %v", probs[0].Error())
	}
}

// flipInPack flips one bit at off in the file h.
func flipInPack(t *testing.T, be *mem.Backend, h backend.Handle, off int) {
	ctx := context.Background()
	var data []byte
	err := be.Load(ctx, h, 0, 0, func(rd io.Reader) error {
		var err error
		data, err = io.ReadAll(rd)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 1
	if err := be.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, h, backend.NewByteReader(data, false)); err != nil {
		t.Fatal(err)
	}
}

func ExampleRun() {
	be, _, _ := fixture(func(a ...any) { panic(fmt.Sprint(a...)) })
	r, _ := repo.Open(context.Background(), be, "pw", repo.Options{})
	rep, err := check.Run(context.Background(), r, check.Options{ReadData: true}, func(p check.Problem) {
		fmt.Println(p.Error())
	})
	fmt.Println(rep.OK(), rep.PacksRead, err)
	// Output: true 4 <nil>
}
