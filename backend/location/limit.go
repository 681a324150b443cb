package location

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/time/rate"

	"github.com/cairn-backup/cairn/backend"
)

// Limits caps the transfer rates of a backend, like restic's
// --limit-upload and --limit-download, and the number of operations in
// flight, like restic's connection semaphore. The zero value means
// unlimited.
type Limits struct {
	// UploadKiB and DownloadKiB are rates in KiB/s; 0 means no limit.
	UploadKiB, DownloadKiB int
	// Connections is the most Save, Load, Stat and Remove calls that run
	// at once (0: no limit); more wait for a free slot or the end of their
	// context. Lock files are exempt, as in restic, so that refreshing a
	// lock never waits behind a queue of pack uploads; List is exempt
	// because its callback may itself use the backend. Set it to the
	// backend's Connections (the -o scheme.connections option) to make that
	// number a guarantee rather than a hint to callers.
	Connections uint
}

// limitBurst is the largest amount a limited transfer moves at once: small
// enough to keep the rate smooth, large enough that the limiter's own cost
// does not matter.
const limitBurst = 64 << 10

// Limit wraps be so that Save sends and Load receives at most the given
// rates, summed over all concurrent transfers, and at most l.Connections
// operations run at once. It returns be unchanged when there is no limit,
// and an error for a negative rate. The wrapper still offers
// backend.Creator and backend.Replacer where be does.
func Limit(be backend.Backend, l Limits) (backend.Backend, error) {
	if l.UploadKiB < 0 || l.DownloadKiB < 0 {
		return nil, fmt.Errorf("invalid rate limit (upload %d KiB/s, download %d KiB/s): must not be negative", l.UploadKiB, l.DownloadKiB)
	}
	if l.UploadKiB == 0 && l.DownloadKiB == 0 && l.Connections == 0 {
		return be, nil
	}
	lb := &limited{Backend: be, up: newLimiter(l.UploadKiB), down: newLimiter(l.DownloadKiB)}
	if l.Connections > 0 {
		lb.slots = make(chan struct{}, l.Connections)
	}
	return lb, nil
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
	slots    chan struct{} // one element per running operation; nil: no cap
}

// acquire takes a slot for an operation on a file of type t and returns
// the function that gives it back.
func (b *limited) acquire(ctx context.Context, t backend.FileType) (release func(), err error) {
	if b.slots == nil || t == backend.LockFile {
		return func() {}, nil
	}
	select {
	case b.slots <- struct{}{}:
		return func() { <-b.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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
	release, err := b.acquire(ctx, h.Type)
	if err != nil {
		return fmt.Errorf("save %v: wait for a connection: %w", h, err)
	}
	defer release()
	if b.up == nil {
		return b.Backend.Save(ctx, h, rd)
	}
	return b.Backend.Save(ctx, h, &limitedRewinder{RewindReader: rd, r: limitedReader{ctx: ctx, rd: rd, lim: b.up}})
}

// Load downloads no faster than the download limit.
func (b *limited) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	release, err := b.acquire(ctx, h.Type)
	if err != nil {
		return fmt.Errorf("load %v: wait for a connection: %w", h, err)
	}
	defer release()
	if b.down == nil {
		return b.Backend.Load(ctx, h, length, offset, fn)
	}
	return b.Backend.Load(ctx, h, length, offset, func(rd io.Reader) error {
		return fn(&limitedReader{ctx: ctx, rd: rd, lim: b.down})
	})
}

// Stat waits for a free connection.
func (b *limited) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	release, err := b.acquire(ctx, h.Type)
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("stat %v: wait for a connection: %w", h, err)
	}
	defer release()
	return b.Backend.Stat(ctx, h)
}

// Remove waits for a free connection.
func (b *limited) Remove(ctx context.Context, h backend.Handle) error {
	release, err := b.acquire(ctx, h.Type)
	if err != nil {
		return fmt.Errorf("remove %v: wait for a connection: %w", h, err)
	}
	defer release()
	return b.Backend.Remove(ctx, h)
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
