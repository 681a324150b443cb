package prune_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/prune"
	"github.com/cairn-backup/cairn/repo/tree"
)

// Forget a snapshot and prune: the data only it used is removed, the rest
// is copied out of the packs that held both.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "prune-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	be, err := local.Create(ctx, filepath.Join(dir, "repo"))
	if err != nil {
		fmt.Println(err)
		return
	}
	// TestParams: a cheap key derivation, for the example only.
	r, err := repo.Init(ctx, be, "secret", repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	// Two snapshots: the first holds files a and b, the second only b.
	first, _ := saveSnapshot(ctx, r, map[string]string{"a": "only in the first snapshot", "b": "in both"})
	if _, err := saveSnapshot(ctx, r, map[string]string{"b": "in both"}); err != nil {
		fmt.Println(err)
		return
	}
	// Forget the first one.
	if err := be.Remove(ctx, backend.Handle{Type: backend.SnapshotFile, Name: first.String()}); err != nil {
		fmt.Println(err)
		return
	}

	// Prune under the exclusive lock.
	ctx, lock, err := r.Lock(ctx, true, repo.LockOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lock.Unlock()
	plan, err := prune.NewPlan(ctx, r, prune.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := plan.Stats()
	fmt.Printf("used %d blobs, unused %d; repack %d packs, delete %d\n", s.Blobs.Used, s.Blobs.Unused, s.Packs.Repack, s.Packs.Remove)
	if err := plan.Execute(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("blob of a still stored:", r.Index().Has(blob.Handle{ID: blob.Hash([]byte("only in the first snapshot")), Type: blob.DataBlob}))
	// Output:
	// used 2 blobs, unused 2; repack 1 packs, delete 1
	// blob of a still stored: false
}

// saveSnapshot stores files (name → content, one blob each) as a snapshot.
func saveSnapshot(ctx context.Context, r *repo.Repository, files map[string]string) (blob.ID, error) {
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		return blob.ID{}, err
	}
	var nodes []*tree.Node
	for _, name := range []string{"a", "b"} {
		data, ok := files[name]
		if !ok {
			continue
		}
		id := blob.Hash([]byte(data))
		if _, err := w.SaveBlob(ctx, blob.DataBlob, []byte(data), id); err != nil {
			return blob.ID{}, err
		}
		nodes = append(nodes, &tree.Node{Name: name, Type: tree.TypeFile, Mode: 0o644, Size: uint64(len(data)), Content: []blob.ID{id}})
	}
	buf, err := tree.Encode(nodes)
	if err != nil {
		return blob.ID{}, err
	}
	root := blob.Hash(buf)
	if _, err := w.SaveBlob(ctx, blob.TreeBlob, buf, root); err != nil {
		return blob.ID{}, err
	}
	if err := w.Flush(ctx); err != nil {
		return blob.ID{}, err
	}
	return r.SaveSnapshot(ctx, &repo.Snapshot{Time: time.Now(), Tree: &root, Paths: []string{"/"}, Hostname: "example"})
}
