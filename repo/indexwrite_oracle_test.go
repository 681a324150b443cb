package repo_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

// RewriteIndex on a restic-made repository: three index files from three
// backups become one, a pack dropped from the index (and then deleted) is
// gone, and restic checks the result clean and reads every byte.
func TestRewriteIndexResticChecks(t *testing.T) {
	ctx := context.Background()
	o := oracle.New(t)
	dir := filepath.Join(t.TempDir(), "repo")
	o.Init(dir, 2)
	// A key with cheap derivation (same password, same master key) keeps
	// each restic command below fast.
	be, err := local.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, be, o.Password(), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ChangePassword(ctx, o.Password(), repo.KeyOptions{Username: "test", Hostname: "test", Params: &crypto.TestParams}); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for i, content := range []string{"first file", "second file", "third file"} {
		if err := os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i))), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		o.Backup(dir, []string{src})
	}
	if n := len(o.List(dir, "index")); n != 3 {
		t.Fatalf("restic wrote %d index files, want 3", n)
	}

	r, err = repo.Open(ctx, be, o.Password(), repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// An extra pack no snapshot uses, written with its own index file.
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	extra := []byte("a blob no snapshot references")
	if _, err := w.SaveBlob(ctx, blob.DataBlob, extra, blob.ID{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	extraPack := r.Index().Lookup(blob.Handle{ID: blob.Hash(extra), Type: blob.DataBlob})[0].Pack
	packsBefore := len(r.Index().Packs())

	ids, err := r.RewriteIndex(ctx, repo.RewriteIndexOptions{Drop: func(p blob.ID) bool { return p == extraPack }})
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Remove(ctx, backend.Handle{Type: backend.PackFile, Name: extraPack.String()}); err != nil {
		t.Fatal(err)
	}
	got := o.List(dir, "index")
	if len(ids) != 1 || !slices.Equal(got, []string{ids[0].String()}) {
		t.Fatalf("restic lists index files %v, RewriteIndex wrote %v", got, ids)
	}
	idx := o.CatIndex(dir, ids[0].String())
	if len(idx.Packs) != packsBefore-1 {
		t.Fatalf("new index has %d packs, want %d", len(idx.Packs), packsBefore-1)
	}
	o.MustCheck(dir, true)
	o.Restore(dir, "latest", t.TempDir())
}
