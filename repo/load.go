package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
)

// ErrBlobNotFound means the index lists no pack for a blob.
var ErrBlobNotFound = errors.New("blob not found in index")

// IndexProgress is told about each index file loaded.
type IndexProgress func(loaded, total int)

// LoadIndex loads every index file into the in-memory index. Like restic, one
// index file that cannot be loaded or decoded fails the whole load (the
// error names it; `repair index` rebuilds it).
func (r *Repository) LoadIndex(ctx context.Context, progress IndexProgress) error {
	var ids []blob.ID
	if err := r.List(ctx, backend.IndexFile, func(id blob.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return fmt.Errorf("list index files: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(2, r.be.Connections())))
	var mu sync.Mutex
	loaded := 0
	for _, id := range ids {
		g.Go(func() error {
			f, err := r.LoadIndexFile(gctx, id)
			if err != nil {
				return err
			}
			r.idx.AddFile(id, f)
			if progress != nil {
				mu.Lock()
				loaded++
				progress(loaded, len(ids))
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	r.indexMu.Lock()
	r.indexLoaded = true
	r.indexMu.Unlock()
	return nil
}

// EnsureIndex loads the index unless it was loaded already.
func (r *Repository) EnsureIndex(ctx context.Context, progress IndexProgress) error {
	r.indexMu.Lock()
	loaded := r.indexLoaded
	r.indexMu.Unlock()
	if loaded {
		return nil
	}
	return r.LoadIndex(ctx, progress)
}

// LoadIndexFile loads and decodes one index file. It accepts the legacy
// format and rejects compressed entries in a version 1 repository.
func (r *Repository) LoadIndexFile(ctx context.Context, id blob.ID) (*index.File, error) {
	buf, err := r.LoadUnpacked(ctx, backend.IndexFile, id)
	if err != nil {
		return nil, fmt.Errorf("error loading index %s: %w", id, err)
	}
	f, _, err := index.Decode(buf)
	if err != nil {
		return nil, fmt.Errorf("error loading index %s: %w", id, err)
	}
	if r.cfg.Version < 2 && f.HasCompressed() {
		return nil, fmt.Errorf("error loading index %s: index uses feature not supported by repository version 1", id)
	}
	return f, nil
}

// LoadBlob returns the plaintext of a blob, reusing buf when it is large
// enough. Every stored copy is tried until one decrypts, decompresses and
// hashes to the blob's ID; the error names each pack that failed.
func (r *Repository) LoadBlob(ctx context.Context, t blob.Type, id blob.ID, buf []byte) ([]byte, error) {
	h := blob.Handle{ID: id, Type: t}
	locs := r.idx.Lookup(h)
	if len(locs) == 0 {
		return nil, fmt.Errorf("load %v: %w", h, ErrBlobNotFound)
	}
	var errs []error
	for _, loc := range locs {
		out, err := r.loadBlobFrom(ctx, loc, buf)
		if err == nil {
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("pack %s: %w", loc.Pack.Str(), err))
	}
	return nil, fmt.Errorf("load %v %s from %d pack(s): %w", h.Type, id, len(locs), errors.Join(errs...))
}

func (r *Repository) loadBlobFrom(ctx context.Context, loc index.Location, buf []byte) ([]byte, error) {
	if cap(buf) < int(loc.Length) {
		buf = make([]byte, loc.Length)
	}
	buf = buf[:loc.Length]
	h := backend.Handle{Type: backend.PackFile, Name: loc.Pack.String(), IsMetadata: loc.Type == blob.TreeBlob}
	err := r.be.Load(ctx, h, int(loc.Length), int64(loc.Offset), func(rd io.Reader) error {
		_, err := io.ReadFull(rd, buf)
		return err
	})
	if err != nil {
		return nil, err
	}
	// No dst: an uncompressed blob is decrypted in place, in buf.
	return r.OpenBlob(loc.Handle, buf, loc.UncompressedLength, nil)
}
