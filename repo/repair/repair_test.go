package repair_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
	"github.com/cairn-backup/cairn/repo/repair"
	"github.com/cairn-backup/cairn/repo/tree"
)

var keyOpts = repo.KeyOptions{Username: "tester", Hostname: "testhost", Params: &crypto.TestParams}

func newMem(t testing.TB) (*repo.Repository, *mem.Backend) {
	t.Helper()
	be := mem.New()
	r, err := repo.Init(context.Background(), be, "secret", repo.InitOptions{Key: keyOpts}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

// savePack writes blobs of type typ into one new pack with its own index
// file and returns the pack's ID and that index file's ID.
func savePack(t testing.TB, r *repo.Repository, typ blob.Type, datas ...[]byte) (packID, indexID blob.ID) {
	t.Helper()
	ctx := context.Background()
	before := indexFiles(t, r)
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range datas {
		if _, err := w.SaveBlob(ctx, typ, d, blob.ID{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	packID = r.Index().Lookup(blob.Handle{ID: blob.Hash(datas[0]), Type: typ})[0].Pack
	for _, id := range indexFiles(t, r) {
		if !slices.Contains(before, id) {
			indexID = id
		}
	}
	return packID, indexID
}

func indexFiles(t testing.TB, r *repo.Repository) []blob.ID {
	t.Helper()
	var ids []blob.ID
	if err := r.List(context.Background(), backend.IndexFile, func(id blob.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ids, blob.ID.Compare)
	return ids
}

func reopen(t testing.TB, be backend.Backend) *repo.Repository {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Open(ctx, be, "secret", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx, nil); err != nil {
		t.Fatalf("load repaired index: %v", err)
	}
	return r
}

// recorder keeps every message.
type recorder struct{ out, errs []string }

func (r *recorder) P(f string, a ...any)  { r.out = append(r.out, fmt.Sprintf(f, a...)) }
func (r *recorder) E(f string, a ...any)  { r.errs = append(r.errs, fmt.Sprintf(f, a...)) }
func (r *recorder) V(f string, a ...any)  { r.out = append(r.out, fmt.Sprintf(f, a...)) }
func (r *recorder) VV(f string, a ...any) {}

// Every kind of index damage at once: a missing index file, an unreadable
// one, an index entry that does not match its pack's size, and an indexed
// pack that is gone.
func TestIndex(t *testing.T) {
	ctx := context.Background()
	r, be := newMem(t)
	p1, _ := savePack(t, r, blob.DataBlob, []byte("one a"), []byte("one b"))
	p2, i2 := savePack(t, r, blob.DataBlob, []byte("two"))
	p3, i3 := savePack(t, r, blob.TreeBlob, []byte(`{"nodes":[]}`+"\n"))
	p4, _ := savePack(t, r, blob.DataBlob, []byte("four"))

	// i2 is lost, i3 is overwritten with garbage, p4 is deleted.
	rm := func(ft backend.FileType, id blob.ID) {
		if err := be.Remove(ctx, backend.Handle{Type: ft, Name: id.String()}); err != nil {
			t.Fatal(err)
		}
	}
	rm(backend.IndexFile, i2)
	rm(backend.IndexFile, i3)
	garbage := i3 // keeps its name, so it is listed but fails to decrypt
	if err := be.Save(ctx, backend.Handle{Type: backend.IndexFile, Name: garbage.String()}, backend.NewByteReader([]byte("not an index at all, too short to be sealed"), false)); err != nil {
		t.Fatal(err)
	}
	rm(backend.PackFile, p4)
	// An extra index file claims a blob of p1 that is not there, so the
	// entries add up to the wrong size.
	bogus := index.File{Packs: []index.PackEntry{{ID: p1, Blobs: []index.BlobEntry{{ID: blob.Hash([]byte("x")), Type: blob.DataBlob, Offset: 1 << 20, Length: 64}}}}}
	buf, err := bogus.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveUnpacked(ctx, backend.IndexFile, buf); err != nil {
		t.Fatal(err)
	}
	old := indexFiles(t, r)

	// A fresh open, like the command: the index cannot be loaded as it is.
	r, err = repo.Open(ctx, be, "secret", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx, nil); err == nil {
		t.Fatal("damaged index loaded")
	}
	var rec recorder
	res, err := repair.Index(ctx, r, repair.IndexOptions{}, &rec)
	if err != nil {
		t.Fatal(err)
	}
	sorted := func(ids ...blob.ID) []blob.ID {
		slices.SortFunc(ids, blob.ID.Compare)
		return ids
	}
	switch {
	case !slices.Equal(res.InvalidIndexes, []blob.ID{garbage}):
		t.Errorf("invalid indexes %v, want %v", res.InvalidIndexes, garbage)
	case !slices.Equal(sorted(res.Added...), sorted(p2, p3)):
		t.Errorf("added %v, want %v %v", res.Added, p2, p3)
	case !slices.Equal(res.Reindexed, []blob.ID{p1}):
		t.Errorf("reindexed %v, want %v", res.Reindexed, p1)
	case !slices.Equal(res.Missing, []blob.ID{p4}):
		t.Errorf("missing %v, want %v", res.Missing, p4)
	case len(res.Skipped) != 0:
		t.Errorf("skipped %v", res.Skipped)
	}
	wantMsgs := []string{
		"removing invalid index " + garbage.String() + ": ",
		"adding pack file to index " + p2.String(),
		"reindexing pack file " + p1.String() + " with unexpected size ",
		"removing not found pack file " + p4.String(),
	}
	for _, w := range wantMsgs {
		if !slices.ContainsFunc(rec.errs, func(s string) bool { return strings.HasPrefix(s, w) }) {
			t.Errorf("no warning %q in %q", w, rec.errs)
		}
	}
	if want := []string{"loading indexes...", "getting pack files to read...", "reading pack files", "rebuilding index"}; !slices.Equal(rec.out, want) {
		t.Errorf("messages %q, want %q", rec.out, want)
	}
	now := indexFiles(t, r)
	if !slices.Equal(now, sorted(res.NewIndexes...)) {
		t.Fatalf("index files %v, want only the new %v", now, res.NewIndexes)
	}
	for _, id := range old {
		if slices.Contains(now, id) {
			t.Fatalf("old index file %s survived", id.Str())
		}
	}

	// The repaired index, read afresh, is exactly the pack headers.
	r2 := reopen(t, be)
	if got := sorted(r2.Index().Packs()...); !slices.Equal(got, sorted(p1, p2, p3)) {
		t.Fatalf("packs %v, want %v %v %v", got, p1, p2, p3)
	}
	for _, p := range []blob.ID{p1, p2, p3} {
		buf, err := backend.LoadAll(ctx, be, backend.Handle{Type: backend.PackFile, Name: p.String()})
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := pack.ReadHeader(bytes.NewReader(buf), int64(len(buf)), r2.Key())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range hdr {
			locs := r2.Index().Lookup(b.Handle)
			if len(locs) != 1 || locs[0].Pack != p || locs[0].Blob != b {
				t.Fatalf("blob %v: index has %+v, header says %+v in %s", b.Handle, locs, b, p.Str())
			}
		}
	}
	if r2.Index().Len(blob.DataBlob) != 3 || r2.Index().Len(blob.TreeBlob) != 1 {
		t.Fatalf("index has %d data, %d tree blobs", r2.Index().Len(blob.DataBlob), r2.Index().Len(blob.TreeBlob))
	}

	// A second run finds nothing to do.
	rec = recorder{}
	res, err = repair.Index(ctx, r2, repair.IndexOptions{}, &rec)
	if err != nil || len(rec.errs) != 0 || len(res.Added)+len(res.Reindexed)+len(res.Missing) != 0 {
		t.Fatalf("second run: %v, warnings %q, %+v", err, rec.errs, res)
	}
}

// --read-all-packs: every pack is read, and one whose header is damaged is
// skipped (its blobs are in no index afterwards).
func TestIndexReadAllPacks(t *testing.T) {
	ctx := context.Background()
	r, be := newMem(t)
	p1, _ := savePack(t, r, blob.DataBlob, []byte("one"))
	p2, _ := savePack(t, r, blob.DataBlob, []byte("two"))
	h := backend.Handle{Type: backend.PackFile, Name: p2.String()}
	buf, err := backend.LoadAll(ctx, be, h)
	if err != nil {
		t.Fatal(err)
	}
	buf[len(buf)-10] ^= 1 // in the encrypted header
	if err := be.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, h, backend.NewByteReader(buf, false)); err != nil {
		t.Fatal(err)
	}
	var rec recorder
	res, err := repair.Index(ctx, r, repair.IndexOptions{ReadAllPacks: true}, &rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 2 || !slices.Equal(res.Skipped, []blob.ID{p2}) {
		t.Fatalf("added %v skipped %v", res.Added, res.Skipped)
	}
	if !slices.Contains(rec.out, "skipped incomplete pack file: "+p2.String()) {
		t.Fatalf("no skip message in %q", rec.out)
	}
	if got := reopen(t, be).Index().Packs(); !slices.Equal(got, []blob.ID{p1}) {
		t.Fatalf("packs %v, want %v", got, p1)
	}
}

// fixture builds one snapshot with every case repair snapshots handles.
type fixture struct {
	r          *repo.Repository
	be         *mem.Backend
	good, bad  *repo.Snapshot
	unreadable *repo.Snapshot
	kept, lost blob.ID // data blobs
}

var mtime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func fileNode(name string, size uint64, content ...blob.ID) *tree.Node {
	return &tree.Node{Name: name, Type: tree.TypeFile, Mode: 0o644, ModTime: mtime, AccessTime: mtime, ChangeTime: mtime, Size: size, Links: 1, Content: content}
}

func dirNode(name string, sub blob.ID) *tree.Node {
	return &tree.Node{Name: name, Type: tree.TypeDir, Mode: fs.ModeDir | 0o755, ModTime: mtime, AccessTime: mtime, ChangeTime: mtime, Subtree: &sub}
}

func saveTree(t *testing.T, r *repo.Repository, nodes ...*tree.Node) blob.ID {
	t.Helper()
	buf, err := tree.Encode(nodes)
	if err != nil {
		t.Fatal(err)
	}
	savePack(t, r, blob.TreeBlob, buf)
	return tree.ID(buf)
}

func newFixture(t *testing.T) *fixture {
	ctx := context.Background()
	r, be := newMem(t)
	f := &fixture{r: r, be: be}
	keptData, lostData := []byte("kept content"), []byte("lost content")
	f.kept, f.lost = blob.Hash(keptData), blob.Hash(lostData)
	savePack(t, r, blob.DataBlob, keptData)
	// lost is never stored: the index does not know it.
	okFile := fileNode("ok", uint64(len(keptData)), f.kept)
	goodRoot := saveTree(t, r, okFile)
	missingTree := blob.Hash([]byte("a tree that was never stored"))
	sub := saveTree(t, r, fileNode("deep", uint64(len(lostData)), f.lost))
	badRoot := saveTree(t, r,
		dirNode("broken", missingTree),
		fileNode("gap", uint64(len(keptData)+len(lostData)), f.kept, f.lost),
		&tree.Node{Name: "odd", Type: tree.TypeIrregular, Mode: 0o644, ModTime: mtime, AccessTime: mtime, ChangeTime: mtime},
		okFile,
		dirNode("sub", sub),
		fileNode("wrongsize", 999, f.kept),
	)
	save := func(root blob.ID, tags ...string) *repo.Snapshot {
		sn := &repo.Snapshot{Time: mtime, Tree: &root, Paths: []string{"/src"}, Hostname: "h", Tags: tags}
		if _, err := r.SaveSnapshot(ctx, sn); err != nil {
			t.Fatal(err)
		}
		return sn
	}
	f.good = save(goodRoot)
	f.bad = save(badRoot, "mine")
	f.unreadable = save(missingTree)
	return f
}

func TestSnapshots(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var rec recorder
	res, err := repair.Snapshots(ctx, f.r, []*repo.Snapshot{f.good, f.bad, f.unreadable}, repair.SnapshotsOptions{}, &rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Changed || !res[1].Changed || res[1].New.IsNull() || res[1].Removed || !res[2].Changed || !res[2].Removed {
		t.Fatalf("results %+v", res)
	}
	want := []string{
		"\n" + f.good.String(),
		"\n" + f.bad.String(),
		`  dir "/broken": replaced with empty directory`,
		`  file "/gap": removed missing content`,
		`  file "/odd": removed node with invalid type "irregular"`,
		`  file "/sub/deep": removed missing content`,
		`  file "/wrongsize": fixed incorrect size`,
		"saved new snapshot " + res[1].New.Str(),
		"\n" + f.unreadable.String(),
		`  dir "/": not readable`,
		"removed empty snapshot " + f.unreadable.ID().Str(),
	}
	if !slices.Equal(rec.out, want) {
		t.Fatalf("messages\n%q\nwant\n%q", rec.out, want)
	}

	r := reopen(t, f.be)
	sn, err := r.LoadSnapshot(ctx, res[1].New)
	if err != nil {
		t.Fatal(err)
	}
	if sn.Original == nil || *sn.Original != f.bad.ID() || !slices.Equal(sn.Tags, []string{"mine", "repaired"}) || !slices.Equal(f.bad.Tags, []string{"mine"}) {
		t.Fatalf("repaired snapshot original %v tags %v (input tags now %v)", sn.Original, sn.Tags, f.bad.Tags)
	}
	root, err := r.LoadTree(ctx, *sn.Tree)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range root.Nodes() {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{"broken", "gap", "ok", "sub", "wrongsize"}) {
		t.Fatalf("repaired root lists %v", names)
	}
	if n := root.Find("broken"); *n.Subtree != tree.EmptyID() {
		t.Fatalf("broken dir now %v, want the empty tree", n.Subtree)
	}
	if n := root.Find("gap"); !slices.Equal(n.Content, []blob.ID{f.kept}) || n.Size != uint64(len("kept content")) {
		t.Fatalf("gap: content %v size %d", n.Content, n.Size)
	}
	if n := root.Find("wrongsize"); n.Size != uint64(len("kept content")) {
		t.Fatalf("wrongsize: size %d", n.Size)
	}
	subTree, err := r.LoadTree(ctx, *root.Find("sub").Subtree)
	if err != nil {
		t.Fatal(err)
	}
	// A file left with no content has [] (not null), as restic writes it.
	if n := subTree.Find("deep"); n == nil || n.Content == nil || len(n.Content) != 0 || n.Size != 0 {
		t.Fatalf("deep: %+v", n)
	}
	// Every tree the new snapshot uses is stored; the empty tree too.
	if !r.Index().Has(blob.Handle{ID: tree.EmptyID(), Type: blob.TreeBlob}) {
		t.Fatal("empty tree not stored")
	}
	var ids []blob.ID
	if err := r.List(ctx, backend.SnapshotFile, func(id blob.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 || slices.Contains(ids, f.unreadable.ID()) {
		t.Fatalf("snapshots now %v", ids)
	}

	// Again: the repaired snapshot is fine, the original still broken,
	// and the same repaired tree comes out (so no new snapshot content).
	rec = recorder{}
	res2, err := repair.Snapshots(ctx, r, []*repo.Snapshot{sn}, repair.SnapshotsOptions{}, &rec)
	if err != nil || res2[0].Changed {
		t.Fatalf("repairing the repaired snapshot: %v %+v %q", err, res2, rec.out)
	}
}

func TestSnapshotsForgetAndDryRun(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	snapFiles := func() []blob.ID {
		var ids []blob.ID
		if err := f.r.List(ctx, backend.SnapshotFile, func(id blob.ID, _ int64) error { ids = append(ids, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	before, packsBefore := snapFiles(), len(f.r.Index().Packs())

	var rec recorder
	res, err := repair.Snapshots(ctx, f.r, []*repo.Snapshot{f.good, f.bad, f.unreadable}, repair.SnapshotsOptions{DryRun: true, Forget: true}, &rec)
	if err != nil {
		t.Fatal(err)
	}
	if !res[1].Changed || !res[1].New.IsNull() || !res[2].Changed || res[2].Removed {
		t.Fatalf("dry run results %+v", res)
	}
	for _, w := range []string{"would save new snapshot", "would remove old snapshot", "would delete empty snapshot"} {
		if !slices.Contains(rec.out, w) {
			t.Errorf("dry run says %q, missing %q", rec.out, w)
		}
	}
	if after := snapFiles(); len(after) != len(before) || len(f.r.Index().Packs()) != packsBefore {
		t.Fatalf("dry run wrote: snapshots %d→%d, packs %d→%d", len(before), len(after), packsBefore, len(f.r.Index().Packs()))
	}

	res, err = repair.Snapshots(ctx, f.r, []*repo.Snapshot{f.bad}, repair.SnapshotsOptions{Forget: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := f.r.LoadSnapshot(ctx, res[0].New)
	if err != nil {
		t.Fatal(err)
	}
	// With --forget restic adds no tag; the original is gone.
	if !slices.Equal(sn.Tags, []string{"mine"}) || *sn.Original != f.bad.ID() {
		t.Fatalf("tags %v original %v", sn.Tags, sn.Original)
	}
	if slices.Contains(snapFiles(), f.bad.ID()) || !res[0].Removed {
		t.Fatal("original snapshot not removed")
	}
}
