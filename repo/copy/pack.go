package copy

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/pack"
)

const (
	// maxGap is the largest stretch of unwanted bytes read to keep two
	// wanted blobs of a pack in one request rather than two.
	maxGap = 1 << 20
	// maxRun bounds one request, and so the memory a worker holds.
	maxRun = 16 << 20
	// maxDecoded bounds what one blob may decompress to here; restic's
	// chunks are at most 8 MiB. A larger blob goes through
	// Repository.LoadBlob.
	maxDecoded = 64 << 20
)

// copyPack reads the wanted blobs of one source pack in as few ranged
// requests as is sensible, and saves each into the destination. A blob
// that fails here (damaged copy, failed request) is loaded through the
// repository, which tries every copy the index knows and names each
// failure.
func (c *copier) copyPack(ctx context.Context, w *repo.BlobWriter, id blob.ID, blobs []pack.Blob) error {
	slices.SortFunc(blobs, func(a, b pack.Blob) int { return int(a.Offset) - int(b.Offset) })
	for len(blobs) > 0 {
		n := 1
		end := int64(blobs[0].Offset) + int64(blobs[0].Length)
		for n < len(blobs) {
			b := blobs[n]
			next := int64(b.Offset) + int64(b.Length)
			if int64(b.Offset)-end > maxGap || next-int64(blobs[0].Offset) > maxRun {
				break
			}
			end = max(end, next)
			n++
		}
		if err := c.copyRun(ctx, w, id, blobs[:n], end); err != nil {
			return err
		}
		blobs = blobs[n:]
	}
	return nil
}

func (c *copier) copyRun(ctx context.Context, w *repo.BlobWriter, id blob.ID, run []pack.Blob, end int64) error {
	start := int64(run[0].Offset)
	buf := make([]byte, end-start)
	h := backend.Handle{Type: backend.PackFile, Name: id.String()}
	err := c.src.Backend().Load(ctx, h, len(buf), start, func(rd io.Reader) error {
		_, err := io.ReadFull(rd, buf)
		return err
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	loaded := err == nil
	for _, b := range run {
		var plain []byte
		if loaded {
			sealed := buf[int64(b.Offset)-start : int64(b.Offset)-start+int64(b.Length)]
			plain, err = c.open(b, sealed)
		}
		if !loaded || err != nil {
			plain, err = c.src.LoadBlob(ctx, b.Type, b.ID, nil)
			if err != nil {
				return err
			}
		}
		if _, err := w.SaveBlob(ctx, b.Type, plain, b.ID); err != nil {
			return fmt.Errorf("save %v: %w", b.Handle, err)
		}
	}
	return nil
}

// open decrypts, decompresses and verifies one blob read from a pack. An
// uncompressed blob is decrypted in place, in sealed.
func (c *copier) open(b pack.Blob, sealed []byte) ([]byte, error) {
	if b.UncompressedLength > maxDecoded {
		return nil, fmt.Errorf("%v: %d bytes uncompressed is too large to decode here", b.Handle, b.UncompressedLength)
	}
	return c.src.OpenBlob(b.Handle, sealed, b.UncompressedLength, nil)
}
