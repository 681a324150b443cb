package location

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/time/rate"

	"github.com/cairn-backup/cairn/backend"
)

// Limits caps the transfer rates of a backend, like restic's
// --limit-upload and --limit-download. The zero value means unlimited.
type Limits struct {
	// UploadKiB and DownloadKiB are rates in KiB/s; 0 means no limit.
	UploadKiB, DownloadKiB int
}

// limitBurst is the largest amount a limited transfer moves at once: small
// enough to keep the rate smooth, large enough that the limiter's own cost
// does not matter.
const limitBurst = 64 << 10

// Limit wraps be so that Save sends and Load receives at most the given
// rates, summed over all concurrent transfers. It returns be unchanged when
// there is no limit, and an error for a negative rate. The wrapper still
// offers backend.Creator and backend.Replacer where be does.
func Limit(be backend.Backend, l Limits) (backend.Backend, error) {
	if l.UploadKiB < 0 || l.DownloadKiB < 0 {
		return nil, fmt.Errorf("invalid rate limit (upload %d KiB/s, download %d KiB/s): must not be negative", l.UploadKiB, l.DownloadKiB)
	}
	if l.UploadKiB == 0 && l.DownloadKiB == 0 {
		return be, nil
	}
	return &limited{Backend: be, up: newLimiter(l.UploadKiB), down: newLimiter(l.DownloadKiB)}, nil
}

func newLimiter(kib int) *rate.Limiter {
	if kib == 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(kib*1024), limitBurst)
}

// limited is a rate-limited backend.
type limited struct {
	backend.Backend
	up, down *rate.Limiter
}

var (
	_ backend.Creator  = (*limited)(nil)
	_ backend.Replacer = (*limited)(nil)
)

// Create prepares the location if the wrapped backend knows how.
func (b *limited) Create(ctx context.Context) error {
	if c, ok := b.Backend.(backend.Creator); ok {
		return c.Create(ctx)
	}
	return nil
}

// HasAtomicReplace reports what the wrapped backend reports.
func (b *limited) HasAtomicReplace() bool {
	r, ok := b.Backend.(backend.Replacer)
	return ok && r.HasAtomicReplace()
}

// Save uploads rd no faster than the upload limit.
func (b *limited) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if b.up == nil {
		return b.Backend.Save(ctx, h, rd)
	}
	return b.Backend.Save(ctx, h, &limitedRewinder{RewindReader: rd, r: limitedReader{ctx: ctx, rd: rd, lim: b.up}})
}

// Load downloads no faster than the download limit.
func (b *limited) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	if b.down == nil {
		return b.Backend.Load(ctx, h, length, offset, fn)
	}
	return b.Backend.Load(ctx, h, length, offset, func(rd io.Reader) error {
		return fn(&limitedReader{ctx: ctx, rd: rd, lim: b.down})
	})
}

// limitedReader waits for the limiter before handing out each piece.
type limitedReader struct {
	ctx context.Context
	rd  io.Reader
	lim *rate.Limiter
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if len(p) > limitBurst {
		p = p[:limitBurst]
	}
	n, err := r.rd.Read(p)
	if n > 0 {
		if werr := r.lim.WaitN(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// limitedRewinder is a RewindReader whose reads are limited.
type limitedRewinder struct {
	backend.RewindReader
	r limitedReader
}

func (r *limitedRewinder) Read(p []byte) (int, error) { return r.r.Read(p) }
