package repo

import (
	"context"
	"fmt"
	"io"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/pack"
)

// ListPack reads the blob list from the header of pack id, whose file has
// the given size. Only the header's bytes are downloaded (one or two ranged
// reads at the end of the file), not the pack. Damage wraps
// pack.ErrInvalidPack.
func (r *Repository) ListPack(ctx context.Context, id blob.ID, size int64) ([]pack.Blob, error) {
	rd := &rangeReader{ctx: ctx, be: r.be, h: backend.Handle{Type: backend.PackFile, Name: id.String()}}
	blobs, err := pack.ReadHeader(rd, size, r.key)
	if err != nil {
		return nil, fmt.Errorf("read header of pack %s: %w", id.Str(), err)
	}
	return blobs, nil
}

// rangeReader is an io.ReaderAt over one backend file.
type rangeReader struct {
	ctx context.Context
	be  backend.Backend
	h   backend.Handle
}

func (ra *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	err := ra.be.Load(ra.ctx, ra.h, len(p), off, func(rd io.Reader) error {
		var err error
		n, err = io.ReadFull(rd, p)
		return err
	})
	return n, err
}
