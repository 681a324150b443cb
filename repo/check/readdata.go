package check

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// readData downloads the selected packs and verifies them: the pack's
// SHA-256 is its name, every indexed blob decrypts, decompresses and hashes
// to its ID, and the pack header lists exactly the indexed blobs.
func (c *checker) readData(ctx context.Context) error {
	all := make(map[blob.ID]int64, len(c.packs))
	for id, pi := range c.packs {
		all[id] = pi.size
	}
	if c.used != nil {
		// Only the packs of the selected snapshots, as restic does.
		filtered := make(map[blob.ID]int64)
		idx := c.r.Index()
		for h := range c.used {
			for _, loc := range idx.Lookup(h) {
				filtered[loc.Pack] = all[loc.Pack]
			}
		}
		all = filtered
	}
	sel := all
	if c.opts.ReadFilter != nil {
		sel = c.opts.ReadFilter(all)
	}
	ids := make([]blob.ID, 0, len(sel))
	for id := range sel {
		ids = append(ids, id)
	}
	sortIDs(ids)

	if err := c.readBatch(ctx, readers(c.r, c.opts), ids, sel); err != nil {
		return err
	}
	return ctx.Err()
}

// readers is how many packs are read at once.
func readers(r *repo.Repository, opts Options) int {
	workers := opts.Workers
	if workers <= 0 {
		workers = min(int(r.Backend().Connections()), runtime.GOMAXPROCS(0))
	}
	return max(workers, 1)
}

// readBatch reads the packs, each with its blobs as the index lists them,
// taken from the index when its turn comes (not all packs' lists at once).
func (c *checker) readBatch(ctx context.Context, workers int, ids []blob.ID, sizes map[blob.ID]int64) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, id := range ids {
		g.Go(func() error {
			var blobs []pack.Blob
			c.r.Index().EachEntryOf(id, func(e index.Entry) bool {
				blobs = append(blobs, e.Blob)
				return true
			})
			p := c.checkPackData(gctx, id, sizes[id], blobs)
			if p != nil && gctx.Err() == nil {
				// A second read tells a transient failure from damage.
				if p2 := c.checkPackData(gctx, id, sizes[id], blobs); p2 != nil {
					p = p2
				} else {
					p = &Problem{Kind: KindData, Pack: id, Errs: []error{fmt.Errorf("check successful on second attempt, original error %v", p.Error())}}
				}
			}
			if gctx.Err() != nil {
				return gctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			c.rep.PacksRead++
			if p != nil {
				c.emit(*p)
			}
			return nil
		})
	}
	return g.Wait()
}

// checkPackData reads and verifies one pack; nil means it is fine.
func (c *checker) checkPackData(ctx context.Context, id blob.ID, size int64, indexed []pack.Blob) *Problem {
	broken := func(errs []error) *Problem {
		return &Problem{Kind: KindData, Pack: id, Broken: true, Errs: errs}
	}
	if len(indexed) == 0 {
		return broken([]error{errors.New("pack is empty or not indexed")})
	}
	blobs := slices.Clone(indexed) // sorted below; the retry shares indexed
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].Offset < blobs[j].Offset })
	var errs []error
	end := uint32(0)
	for _, b := range blobs {
		if b.Offset != end {
			errs = append(errs, errors.New("index for pack contains gaps / overlapping blobs"))
			break
		}
		end = b.Offset + b.Length
	}

	key := c.r.Key()
	h := backend.Handle{Type: backend.PackFile, Name: id.String()}
	// A pack whose blobs follow each other from offset 0 is checked as it
	// streams by: only one blob and the header are in memory, not the
	// whole pack (per reader). Any other layout is read whole.
	stream := len(errs) == 0 && int64(end) <= size
	var buf []byte       // the whole pack, when not streaming
	var rdAt io.ReaderAt // what the header is read from
	var sum blob.ID
	var blobErrs []error
	err := c.r.Backend().Load(ctx, h, int(size), 0, func(rd io.Reader) error {
		// A retrying backend calls this again after a failed attempt.
		blobErrs = blobErrs[:0]
		if !stream {
			buf = make([]byte, size)
			if _, err := io.ReadFull(rd, buf); err != nil {
				return err
			}
			sum = blob.ID(sha256.Sum256(buf))
			return nil
		}
		hw := sha256.New()
		rd = io.TeeReader(rd, hw)
		var sealed, plain []byte
		for _, b := range blobs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if cap(sealed) < int(b.Length) {
				sealed = make([]byte, b.Length)
			}
			sealed = sealed[:b.Length]
			if _, err := io.ReadFull(rd, sealed); err != nil {
				return err
			}
			if _, err := c.openBlob(id, b, sealed, &plain); err != nil {
				blobErrs = append(blobErrs, fmt.Errorf("blob %v: %w", b.ID, err))
			}
		}
		tail := make([]byte, size-int64(end))
		if _, err := io.ReadFull(rd, tail); err != nil {
			return err
		}
		sum = blob.ID(hw.Sum(nil))
		rdAt = tailReaderAt{base: int64(end), b: tail}
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return broken(append(errs, fmt.Errorf("partial download error: %w", err)))
		}
		// Nothing to repair in a file that cannot be downloaded at all.
		return &Problem{Kind: KindData, Pack: id, Errs: []error{fmt.Errorf("download error: pack %v: %w", id, err)}}
	}

	if stream {
		errs = append(errs, blobErrs...)
	} else {
		rdAt = bytes.NewReader(buf)
		var sealed, plain []byte
		for _, b := range blobs {
			if ctx.Err() != nil {
				return nil
			}
			if int64(b.Offset)+int64(b.Length) > size {
				errs = append(errs, fmt.Errorf("blob %v: beyond the end of the pack", b.ID))
				continue
			}
			// A copy: opening overwrites the sealed bytes, and the
			// header is read from buf below (an index may place a
			// blob over it).
			sealed = append(sealed[:0], buf[b.Offset:b.Offset+b.Length]...)
			if _, err := c.openBlob(id, b, sealed, &plain); err != nil {
				errs = append(errs, fmt.Errorf("blob %v: %w", b.ID, err))
			}
		}
	}

	if sum != id {
		return broken(append(errs, fmt.Errorf("unexpected pack id %v", sum)))
	}

	hdr, err := pack.ReadHeader(rdAt, size, key)
	if err != nil {
		return broken(append(errs, err))
	}
	if want, got := pack.HeaderSize(blobs), pack.HeaderSize(hdr); want != got {
		errs = append(errs, fmt.Errorf("pack header size does not match, want %v, got %v", want, got))
	}
	idx := c.r.Index()
	for _, hb := range hdr {
		found := false
		for _, loc := range idx.Lookup(hb.Handle) {
			if loc.Pack == id && loc.Blob == hb {
				found = true
				break
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("blob %v is not contained in index or position is incorrect", hb.ID))
		}
	}
	if len(errs) > 0 {
		return broken(errs)
	}
	return nil
}

// tailReaderAt serves the end of a pack, from offset base on, after the
// blobs streamed by. pack.ReadHeader reads a fixed amount from the end,
// which may reach into the blobs: those bytes read as zeros. They matter
// only when the header's length field points into the blobs, and then the
// header fails to decrypt just as it would over the real bytes.
type tailReaderAt struct {
	base int64
	b    []byte
}

func (t tailReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > t.base+int64(len(t.b)) {
		return 0, fmt.Errorf("read at %d: outside the pack", off)
	}
	n := 0
	if off < t.base {
		n = int(min(t.base-off, int64(len(p))))
		clear(p[:n])
		off += int64(n)
	}
	if n < len(p) {
		n += copy(p[n:], t.b[off-t.base:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// openBlob opens one stored blob b of pack packID with the repository's
// OpenBlob (sealed is overwritten; the plaintext goes to *scratch when it
// has room) and words a failure like restic's checker.
func (c *checker) openBlob(packID blob.ID, b pack.Blob, sealed []byte, scratch *[]byte) ([]byte, error) {
	need := int(b.UncompressedLength)
	if need == 0 {
		need = len(sealed)
	}
	if cap(*scratch) < need {
		*scratch = make([]byte, 0, need)
	}
	data, err := c.r.OpenBlob(b.Handle, sealed, b.UncompressedLength, *scratch)
	var be *repo.BlobError
	if err == nil || !errors.As(err, &be) {
		return data, err
	}
	switch be.Step {
	case repo.BlobDecrypt:
		return nil, fmt.Errorf("decrypting blob %v from pack %v failed: %w", b.Handle, packID, be.Err)
	case repo.BlobDecompress:
		return nil, fmt.Errorf("decompressing blob %v from pack %v failed: %w", b.Handle, packID, be.Err)
	}
	return nil, fmt.Errorf("read blob %v from pack %v: wrong data returned, hash is %v", b.Handle, packID, be.Hash)
}
