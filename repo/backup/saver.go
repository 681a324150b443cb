package backup

import (
	"context"
	"sync"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

// blobSaver is what the pipeline needs from the repository's BlobWriter.
type blobSaver interface {
	// SaveBlob stores data unless known and reports whether it was new.
	SaveBlob(ctx context.Context, t blob.Type, data []byte, id blob.ID) (bool, error)
}

var _ blobSaver = (*repo.BlobWriter)(nil)

// dryRunSaver counts what a backup would add without writing anything.
type dryRunSaver struct {
	r    *repo.Repository
	mu   sync.Mutex
	seen map[blob.Handle]struct{}
	st   repo.WriterStats
}

func newDryRunSaver(r *repo.Repository) *dryRunSaver {
	return &dryRunSaver{r: r, seen: make(map[blob.Handle]struct{})}
}

func (d *dryRunSaver) SaveBlob(_ context.Context, t blob.Type, data []byte, id blob.ID) (bool, error) {
	if id.IsNull() {
		id = blob.Hash(data)
	}
	h := blob.Handle{ID: id, Type: t}
	if d.r.Index().Has(h) {
		return false, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen[h]; ok {
		return false, nil
	}
	d.seen[h] = struct{}{}
	if t == blob.DataBlob {
		d.st.DataBlobs++
	} else {
		d.st.TreeBlobs++
	}
	d.st.DataAdded += int64(len(data))
	d.st.DataAddedPacked += int64(len(data) + crypto.Overhead)
	return true, nil
}

func (d *dryRunSaver) stats() repo.WriterStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}
