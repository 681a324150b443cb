package copy_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	repocopy "github.com/cairn-backup/cairn/repo/copy"
	"github.com/cairn-backup/cairn/repo/tree"
)

// Copy the snapshots of one repository into another that has a different
// password, like `restic copy --from-repo SRC -r DST`. A second run finds
// the copies and copies nothing.
func Example() {
	ctx := context.Background()
	// Cheap key derivation keeps the example fast; real repositories use
	// the default.
	keys := repo.KeyOptions{Params: &crypto.TestParams}
	src, err := repo.Init(ctx, mem.New(), "source password", repo.InitOptions{Key: keys}, repo.Options{})
	if err != nil {
		log.Fatal(err)
	}
	// The same polynomial lets copied data deduplicate with new backups.
	dst, err := repo.Init(ctx, mem.New(), "destination password",
		repo.InitOptions{Key: keys, Polynomial: src.Config().Polynomial}, repo.Options{})
	if err != nil {
		log.Fatal(err)
	}
	sn := writeSnapshot(ctx, src, "hello, world\n")

	srcList, err := src.Snapshots(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	dstList, err := dst.Snapshots(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	missing, _ := repocopy.Missing(srcList, dstList)
	n, err := repocopy.Snapshots(ctx, src, dst, missing, repocopy.Options{
		Planned: func(sn *repo.Snapshot, p repocopy.Plan) {
			fmt.Printf("copy %d blobs from %d pack(s)\n", p.Blobs, p.Packs)
		},
		Saved: func(from, to *repo.Snapshot) {
			fmt.Println("saved a copy; its original is the source snapshot:", *to.Original == from.ID())
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("copied", n, "snapshot(s)")

	dstList, err = dst.Snapshots(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	missing, skipped := repocopy.Missing(srcList, dstList)
	fmt.Println("second run: missing", len(missing), "skipped", len(skipped), skipped[0].Source.ID() == sn.ID())

	content, err := dst.LoadBlob(ctx, blob.DataBlob, blob.Hash([]byte("hello, world\n")), nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("destination holds %q\n", content)
	// Output:
	// copy 2 blobs from 2 pack(s)
	// saved a copy; its original is the source snapshot: true
	// copied 1 snapshot(s)
	// second run: missing 0 skipped 1 true
	// destination holds "hello, world\n"
}

// writeSnapshot stores a snapshot of one file with the given content.
func writeSnapshot(ctx context.Context, r *repo.Repository, content string) *repo.Snapshot {
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		log.Fatal(err)
	}
	data := []byte(content)
	if _, err := w.SaveBlob(ctx, blob.DataBlob, data, blob.ID{}); err != nil {
		log.Fatal(err)
	}
	when := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	buf, err := tree.Encode([]*tree.Node{{
		Name: "greeting.txt", Type: tree.TypeFile, Mode: 0o644, ModTime: when, AccessTime: when, ChangeTime: when,
		Size: uint64(len(data)), Links: 1, Content: []blob.ID{blob.Hash(data)},
	}})
	if err != nil {
		log.Fatal(err)
	}
	root := blob.Hash(buf)
	if _, err := w.SaveBlob(ctx, blob.TreeBlob, buf, root); err != nil {
		log.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	sn := &repo.Snapshot{Time: when, Tree: &root, Paths: []string{"/home/me"}, Hostname: "laptop"}
	if _, err := r.SaveSnapshot(ctx, sn); err != nil {
		log.Fatal(err)
	}
	return sn
}
