package repo

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/pack"
)

// loadCounter counts the bytes asked for from pack files.
type loadCounter struct {
	backend.Backend
	asked atomic.Int64
}

func (c *loadCounter) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	if h.Type == backend.PackFile {
		c.asked.Add(int64(length))
		if length == 0 { // the whole file
			c.asked.Add(1 << 40)
		}
	}
	return c.Backend.Load(ctx, h, length, offset, fn)
}

func TestListPackReadsOnlyTheHeader(t *testing.T) {
	ctx := context.Background()
	_, mbe := initMem(t, 2, Options{})
	be := &loadCounter{Backend: mbe}
	r, err := Open(ctx, be, "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 1,000 incompressible blobs: a header of 1,000 entries (far more than
	// the first read takes) in a pack of 4 MiB.
	rng := rand.NewChaCha8([32]byte{7})
	want := map[blob.ID]bool{}
	for range 1000 {
		data := make([]byte, 4<<10)
		_, _ = rng.Read(data)
		if _, err := w.SaveBlob(ctx, blob.DataBlob, data, blob.ID{}); err != nil {
			t.Fatal(err)
		}
		want[blob.Hash(data)] = true
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var packs, total int64
	err = r.List(ctx, backend.PackFile, func(id blob.ID, size int64) error {
		packs++
		total += size
		blobs, err := r.ListPack(ctx, id, size)
		if err != nil {
			return err
		}
		for _, b := range blobs {
			if !want[b.ID] {
				t.Errorf("pack %s lists blob %s, which was not saved", id.Str(), b.ID.Str())
			}
			delete(want, b.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 0 {
		t.Errorf("%d blobs missing from the pack headers", len(want))
	}
	// Each header is 1,000 × 77 bytes at most (v2 entries) plus its MAC
	// and length; whole packs would be 4 MiB.
	if asked, limit := be.asked.Load(), packs*2*(1000*77+64); asked > limit || asked <= 0 {
		t.Errorf("read %d bytes of %d packs (%d bytes in all); want at most %d", asked, packs, total, limit)
	}

	// A truncated pack (read as one byte shorter: the header length is
	// then garbage) is reported as damaged, naming the pack.
	var id blob.ID
	var size int64
	_ = r.List(ctx, backend.PackFile, func(i blob.ID, s int64) error { id, size = i, s; return nil })
	if _, err := r.ListPack(ctx, id, size-1); !errors.Is(err, pack.ErrInvalidPack) || !strings.Contains(err.Error(), id.Str()) {
		t.Errorf("header of a truncated pack: %v", err)
	}
}
