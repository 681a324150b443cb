package repo

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// Index files written during a backup are finished after this many blobs or
// this much time, like restic, so a crash loses little.
const (
	indexMaxBlobs = 50000
	indexMaxAge   = 10 * time.Minute
	// packersPerType is how many packs per blob type are open at once; each
	// new blob goes to a random one, so that an observer of pack sizes cannot
	// tell where a file was chunked (restic ≥ 0.18 does the same).
	packersPerType = 2
)

// WriterStats count what a BlobWriter added to the repository.
type WriterStats struct {
	DataBlobs, TreeBlobs int64
	// DataAdded is the plaintext size of new blobs; DataAddedPacked their
	// stored size including pack headers.
	DataAdded, DataAddedPacked int64
}

// BlobWriter saves blobs into new packs and, as packs are uploaded, writes
// index files. It is safe for concurrent use; uploads run in the background
// with at most the backend's Connections() in flight, and SaveBlob blocks
// while they are all busy.
//
// Blobs already in the index (or being saved) are not stored again. Flush
// must be called at the end; after an error, call Abort.
type BlobWriter struct {
	r        *Repository
	packSize int64

	g    *errgroup.Group
	gctx context.Context

	// mu guards the open packers. add holds it while queueing an upload,
	// which may block until an upload slot frees, so uploads must never
	// take it.
	mu      sync.Mutex
	packers [3][packersPerType]*packer
	closed  bool

	imu      sync.Mutex // guards inflight
	inflight map[blob.Handle]struct{}

	idxMu        sync.Mutex
	pendingPacks []index.PackEntry
	pendingBlobs int
	pendingSince time.Time

	dataBlobs, treeBlobs, dataAdded, dataAddedPacked atomic.Int64

	// hold, if set, keeps finished packs from being stored until it is
	// closed (see HoldUploads).
	hold <-chan struct{}

	bufs sync.Pool
}

type packer struct {
	t  blob.Type
	f  *os.File
	bw *bufio.Writer
	w  *pack.Writer
}

// NewBlobWriter starts a writer. ctx bounds the background uploads.
func (r *Repository) NewBlobWriter(ctx context.Context) (*BlobWriter, error) {
	ps, err := r.opts.packSize()
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(1, r.be.Connections())))
	return &BlobWriter{r: r, packSize: int64(ps), g: g, gctx: gctx, inflight: make(map[blob.Handle]struct{})}, nil
}

// HoldUploads makes the writer keep finished packs (and so index files)
// out of the backend until ready is closed; call it before the first
// SaveBlob. Blobs are still compressed, encrypted and packed meanwhile, so
// a caller can start that work while it waits for a repository lock. Once
// every upload slot holds a finished pack, SaveBlob blocks. If the lock is
// never granted, cancel the writer's context instead of closing ready.
func (w *BlobWriter) HoldUploads(ready <-chan struct{}) {
	w.hold = ready
}

// Stats returns the counts so far.
func (w *BlobWriter) Stats() WriterStats {
	return WriterStats{
		DataBlobs: w.dataBlobs.Load(), TreeBlobs: w.treeBlobs.Load(),
		DataAdded: w.dataAdded.Load(), DataAddedPacked: w.dataAddedPacked.Load(),
	}
}

// Has reports whether the blob is stored or being stored.
func (w *BlobWriter) Has(h blob.Handle) bool {
	if w.r.idx.Has(h) {
		return true
	}
	w.imu.Lock()
	defer w.imu.Unlock()
	_, ok := w.inflight[h]
	return ok
}

// SaveBlob stores data as a blob of type t unless it is already known. id
// must be the SHA-256 of data, or zero to have it computed. It returns
// whether the blob was new.
func (w *BlobWriter) SaveBlob(ctx context.Context, t blob.Type, data []byte, id blob.ID) (bool, error) {
	return w.saveBlob(ctx, t, data, id, false)
}

// SaveBlobAgain stores data even when the index already lists the blob:
// prune copies the blobs it keeps out of packs it is about to delete. A blob
// this writer is storing at the moment is still stored once.
func (w *BlobWriter) SaveBlobAgain(ctx context.Context, t blob.Type, data []byte, id blob.ID) (bool, error) {
	return w.saveBlob(ctx, t, data, id, true)
}

func (w *BlobWriter) saveBlob(ctx context.Context, t blob.Type, data []byte, id blob.ID, again bool) (bool, error) {
	if t != blob.DataBlob && t != blob.TreeBlob {
		return false, fmt.Errorf("save blob: invalid type %v", t)
	}
	if id.IsNull() {
		id = blob.Hash(data)
	}
	h := blob.Handle{ID: id, Type: t}
	if !again && w.r.idx.Has(h) {
		return false, nil
	}
	w.imu.Lock()
	if _, ok := w.inflight[h]; ok {
		w.imu.Unlock()
		return false, nil
	}
	w.inflight[h] = struct{}{}
	w.imu.Unlock()

	sealed, ulen := w.encode(t, data)
	err := w.add(ctx, h, sealed, ulen)
	w.putBuf(sealed)
	if err != nil {
		return false, err
	}
	if t == blob.DataBlob {
		w.dataBlobs.Add(1)
	} else {
		w.treeBlobs.Add(1)
	}
	w.dataAdded.Add(int64(len(data)))
	return true, nil
}

func (w *BlobWriter) getBuf(n int) []byte {
	if b, ok := w.bufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, n)
}

func (w *BlobWriter) putBuf(b []byte) {
	if cap(b) <= 16<<20 {
		w.bufs.Put(&b)
	}
}

// encode compresses (where the repository version and settings say so) and
// seals data. It returns the sealed blob and the uncompressed length (0 when
// stored uncompressed).
func (w *BlobWriter) encode(t blob.Type, data []byte) ([]byte, uint32) {
	cfg, opts := w.r.cfg, w.r.opts
	compressIt := cfg.Version >= 2 && (t == blob.TreeBlob || opts.Compression != CompressionOff)
	if compressIt && len(data) > 0 {
		level := opts.Compression.level()
		if t == blob.TreeBlob {
			level = zstd.SpeedDefault
		}
		zbuf := w.getBuf(len(data) + len(data)/64 + 64)
		z := compress(level, zbuf, data)
		// Store incompressible data blobs as they are: readers accept both,
		// and this saves the zstd framing and the decompression on restore.
		// Trees are always compressed, as restic does.
		if t == blob.TreeBlob || len(z) < len(data) {
			out := w.r.key.Seal(w.getBuf(len(z)+crypto.Overhead), z)
			w.putBuf(z)
			return out, uint32(len(data))
		}
		w.putBuf(z)
	}
	return w.r.key.Seal(w.getBuf(len(data)+crypto.Overhead), data), 0
}

func randomIndex(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0
	}
	return int(v.Int64())
}

func (w *BlobWriter) add(ctx context.Context, h blob.Handle, sealed []byte, ulen uint32) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("save blob: writer is closed")
	}
	if err := w.gctx.Err(); err != nil {
		return fmt.Errorf("save blob %v: upload failed earlier: %w", h, context.Cause(w.gctx))
	}
	var p *packer
	slot := -1
	if int64(len(sealed)) >= w.packSize {
		// A blob as large as a pack gets a pack of its own.
		var err error
		if p, err = w.newPacker(h.Type); err != nil {
			return err
		}
	} else {
		slot = randomIndex(packersPerType)
		p = w.packers[h.Type][slot]
		if p == nil {
			var err error
			if p, err = w.newPacker(h.Type); err != nil {
				return err
			}
			w.packers[h.Type][slot] = p
		}
	}
	if err := p.w.Add(h, sealed, ulen); err != nil {
		return fmt.Errorf("save blob %v: %w", h, err)
	}
	w.dataAddedPacked.Add(int64(len(sealed)))
	if slot >= 0 && p.w.DataSize() < w.packSize && !p.w.HeaderFull() {
		return nil
	}
	if slot >= 0 {
		w.packers[h.Type][slot] = nil
	}
	w.queue(p)
	return nil
}

func (w *BlobWriter) newPacker(t blob.Type) (*packer, error) {
	f, err := os.CreateTemp(w.r.opts.TempDir, "cairn-pack-")
	if err != nil {
		return nil, fmt.Errorf("create temporary pack file: %w", err)
	}
	// The file is only ever reached through f; unlinking it now means a
	// crash cannot leave it behind.
	_ = os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 256<<10)
	return &packer{t: t, f: f, bw: bw, w: pack.NewWriter(bw, w.r.key)}, nil
}

// queue starts the upload of a finished packer. It is called with w.mu held;
// g.Go blocks while all upload slots are busy, which throttles SaveBlob.
func (w *BlobWriter) queue(p *packer) {
	w.g.Go(func() error {
		defer p.f.Close()
		return w.upload(w.gctx, p)
	})
}

func (w *BlobWriter) upload(ctx context.Context, p *packer) error {
	size, err := p.w.Finalize()
	if err != nil {
		return err
	}
	if err := p.bw.Flush(); err != nil {
		return fmt.Errorf("write temporary pack file: %w", err)
	}
	w.dataAddedPacked.Add(pack.HeaderSize(p.w.Blobs()))
	// Hash here, in the upload goroutine, rather than while writing: the
	// writes happen under w.mu, and hashing there would serialise it.
	hw := sha256.New()
	if _, err := io.Copy(hw, io.NewSectionReader(p.f, 0, size)); err != nil {
		return fmt.Errorf("read temporary pack file: %w", err)
	}
	id := blob.ID(hw.Sum(nil))
	if w.hold != nil {
		select {
		case <-w.hold:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	h := backend.Handle{Type: backend.PackFile, Name: id.String(), IsMetadata: p.t == blob.TreeBlob}
	if err := w.r.be.Save(ctx, h, backend.NewFileReader(p.f, size, nil)); err != nil {
		return fmt.Errorf("save pack %s: %w", id.Str(), err)
	}
	blobs := p.w.Blobs()
	w.r.idx.AddPack(id, blobs)
	w.imu.Lock()
	for _, b := range blobs {
		delete(w.inflight, b.Handle)
	}
	w.imu.Unlock()
	return w.addToIndex(ctx, index.NewPackEntry(id, blobs), false)
}

// addToIndex queues a pack for the next index file and writes that file
// when it is full or old enough (or when force is set).
func (w *BlobWriter) addToIndex(ctx context.Context, pe index.PackEntry, force bool) error {
	w.idxMu.Lock()
	defer w.idxMu.Unlock()
	if len(pe.Blobs) > 0 {
		if len(w.pendingPacks) == 0 {
			w.pendingSince = time.Now()
		}
		w.pendingPacks = append(w.pendingPacks, pe)
		w.pendingBlobs += len(pe.Blobs)
	}
	if len(w.pendingPacks) == 0 {
		return nil
	}
	if !force && w.pendingBlobs < indexMaxBlobs && time.Since(w.pendingSince) < indexMaxAge {
		return nil
	}
	f := index.File{Packs: w.pendingPacks}
	buf, err := f.Encode()
	if err != nil {
		return err
	}
	id, err := w.r.SaveUnpacked(ctx, backend.IndexFile, buf)
	if err != nil {
		return err
	}
	w.r.idx.AddFile(id, &f)
	w.pendingPacks, w.pendingBlobs = nil, 0
	return nil
}

// Flush uploads every open pack, waits for all uploads and writes the last
// index file. The writer cannot be used afterwards.
func (w *BlobWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errors.New("flush: writer is closed")
	}
	w.closed = true
	var mergeErr error
	for t := range w.packers {
		ps := w.packers[t][:]
		if err := w.mergePackers(ps); err != nil && mergeErr == nil {
			mergeErr = err
		}
		for i, p := range ps {
			if p != nil {
				ps[i] = nil
				if mergeErr == nil {
					w.queue(p)
				} else {
					p.f.Close()
				}
			}
		}
	}
	w.mu.Unlock()
	if err := w.g.Wait(); err != nil {
		return err
	}
	if mergeErr != nil {
		return mergeErr
	}
	return w.addToIndex(ctx, index.PackEntry{}, true)
}

// mergePackers combines the open packers of one type when together they stay
// below the pack size, so that the last blobs of a backup do not end up in
// several tiny packs (which would also leak their sizes).
func (w *BlobWriter) mergePackers(ps []*packer) error {
	var dst *packer
	for i, p := range ps {
		if p == nil {
			continue
		}
		if dst == nil {
			dst = p
			continue
		}
		if dst.w.DataSize()+p.w.DataSize() >= w.packSize {
			continue
		}
		if err := p.bw.Flush(); err != nil {
			return fmt.Errorf("merge packs: %w", err)
		}
		for _, b := range p.w.Blobs() {
			buf := make([]byte, b.Length)
			if _, err := p.f.ReadAt(buf, int64(b.Offset)); err != nil {
				return fmt.Errorf("merge packs: read temporary pack file: %w", err)
			}
			if err := dst.w.Add(b.Handle, buf, b.UncompressedLength); err != nil {
				return fmt.Errorf("merge packs: %w", err)
			}
		}
		p.f.Close()
		ps[i] = nil
	}
	return nil
}

// Abort drops open packs, waits for running uploads and then tries (with
// ctx, which should outlive a cancelled operation) to write the index for
// packs that were uploaded, so that a later backup can reuse their blobs.
// Such packs are referenced by no snapshot; prune removes them if unused.
func (w *BlobWriter) Abort(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	for t := range w.packers {
		for i, p := range w.packers[t] {
			if p != nil {
				p.f.Close()
				w.packers[t][i] = nil
			}
		}
	}
	w.mu.Unlock()
	_ = w.g.Wait()
	return w.addToIndex(ctx, index.PackEntry{}, true)
}
