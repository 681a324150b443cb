package repair_test

import (
	"context"
	"fmt"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/repair"
)

// Rebuild the index of a repository whose only index file was lost.
func ExampleIndex() {
	ctx := context.Background()
	be := mem.New()
	r, err := repo.Init(ctx, be, "secret", repo.InitOptions{Key: keyOpts}, repo.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	w, _ := r.NewBlobWriter(ctx)
	data := []byte("some file content")
	_, _ = w.SaveBlob(ctx, blob.DataBlob, data, blob.ID{})
	if err := w.Flush(ctx); err != nil {
		fmt.Println(err)
		return
	}
	// Lose the index.
	_ = r.List(ctx, backend.IndexFile, func(id blob.ID, _ int64) error {
		return be.Remove(ctx, backend.Handle{Type: backend.IndexFile, Name: id.String()})
	})

	r, _ = repo.Open(ctx, be, "secret", repo.Options{})
	res, err := repair.Index(ctx, r, repair.IndexOptions{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("packs added:", len(res.Added), "index files written:", len(res.NewIndexes))
	back, err := r.LoadBlob(ctx, blob.DataBlob, blob.Hash(data), nil)
	fmt.Printf("%s %v\n", back, err)
	// Output:
	// packs added: 1 index files written: 1
	// some file content <nil>
}
