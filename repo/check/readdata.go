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

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypto"
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

	workers := readers(c.r, c.opts)

	// The blobs of the packs being read, grouped by pack, a batch of packs
	// at a time: one pass over the index per batch keeps the copy small.
	for len(ids) > 0 {
		n := min(len(ids), packsPerPass)
		batch := ids[:n]
		ids = ids[n:]
		inBatch := make(map[blob.ID][]pack.Blob, n)
		for _, id := range batch {
			inBatch[id] = nil
		}
		c.r.Index().Each(func(loc index.Location) bool {
			if b, ok := inBatch[loc.Pack]; ok {
				inBatch[loc.Pack] = append(b, loc.Blob)
			}
			return true
		})
		if err := c.readBatch(ctx, workers, batch, sel, inBatch); err != nil {
			return err
		}
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

// packsPerPass is how many packs one pass over the index collects blobs for.
const packsPerPass = 4096

func (c *checker) readBatch(ctx context.Context, workers int, ids []blob.ID, sizes map[blob.ID]int64, blobs map[blob.ID][]pack.Blob) error {
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, id := range ids {
		g.Go(func() error {
			p := c.checkPackData(gctx, c.dec, id, sizes[id], blobs[id])
			if p != nil && gctx.Err() == nil {
				// A second read tells a transient failure from damage.
				if p2 := c.checkPackData(gctx, c.dec, id, sizes[id], blobs[id]); p2 != nil {
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
func (c *checker) checkPackData(ctx context.Context, dec *zstd.Decoder, id blob.ID, size int64, indexed []pack.Blob) *Problem {
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

	var buf []byte
	h := backend.Handle{Type: backend.PackFile, Name: id.String()}
	err := c.r.Backend().Load(ctx, h, int(size), 0, func(rd io.Reader) error {
		buf = make([]byte, size)
		_, err := io.ReadFull(rd, buf)
		return err
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

	key := c.r.Key()
	var plain []byte
	for _, b := range blobs {
		if ctx.Err() != nil {
			return nil
		}
		if int64(b.Offset)+int64(b.Length) > size {
			errs = append(errs, fmt.Errorf("blob %v: beyond the end of the pack", b.ID))
			continue
		}
		if _, err := openBlob(key, dec, id, b, buf[b.Offset:b.Offset+b.Length], &plain); err != nil {
			errs = append(errs, fmt.Errorf("blob %v: %w", b.ID, err))
		}
	}

	if got := blob.ID(sha256.Sum256(buf)); got != id {
		return broken(append(errs, fmt.Errorf("unexpected pack id %v", got)))
	}

	hdr, err := pack.ReadHeader(bytes.NewReader(buf), size, key)
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

// openBlob decrypts (into *scratch), decompresses and verifies one stored
// blob b of pack packID, with restic's messages.
func openBlob(key *crypto.Key, dec *zstd.Decoder, packID blob.ID, b pack.Blob, sealed []byte, scratch *[]byte) ([]byte, error) {
	plain, err := key.Open((*scratch)[:0], sealed)
	if err != nil {
		return nil, fmt.Errorf("decrypting blob %v from pack %v failed: %w", b.Handle, packID, err)
	}
	*scratch = plain
	data := plain
	if b.UncompressedLength != 0 {
		data, err = dec.DecodeAll(plain, make([]byte, 0, b.UncompressedLength))
		if err != nil {
			return nil, fmt.Errorf("decompressing blob %v from pack %v failed: %w", b.Handle, packID, err)
		}
		if len(data) != int(b.UncompressedLength) {
			return nil, fmt.Errorf("decompressing blob %v from pack %v: %d bytes, index says %d", b.Handle, packID, len(data), b.UncompressedLength)
		}
	}
	if got := blob.Hash(data); got != b.ID {
		return nil, fmt.Errorf("read blob %v from pack %v: wrong data returned, hash is %v", b.Handle, packID, got)
	}
	return data, nil
}
