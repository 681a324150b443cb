package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
)

const (
	// maxBlobSize bounds what one index entry may make the restore read or
	// allocate. restic's chunks are at most 8 MiB; a larger entry is damage.
	maxBlobSize = 64 << 20
	// maxRangeSize is how much of a pack one job reads (unless a single
	// blob is larger): small enough that the ranges of a few packs keep
	// every worker busy, large enough to amortise a request.
	maxRangeSize = 8 << 20
	// maxGap is the largest unneeded stretch of a pack that is read and
	// dropped rather than skipped with a new request (restic's value).
	maxGap = 1 << 20
	// readBufferSize is the read-ahead of each worker, so that packs of
	// tiny blobs cost few read calls.
	readBufferSize = 512 << 10
)

// dest is one place a blob goes: a file and an offset in it.
type dest struct {
	f   *fileEntry
	off int64
}

// blobEntry is one needed data blob: where it is read from, and every
// place it is written to.
type blobEntry struct {
	loc   index.Location
	dests []dest
}

// packJob is one contiguous range of a pack holding needed blobs, sorted by
// offset and not overlapping.
type packJob struct {
	pack       blob.ID
	start, end int64
	blobs      []*blobEntry
}

// planContent maps every blob write of every file to the pack range it
// comes from. Each needed blob is read from one place (the index's first
// location) however many files use it; the jobs are ordered by the first
// file that needs each pack, so files tend to be written front to back.
// Files that need no blob (empty, already correct, all holes) are returned
// on their own.
func (rs *restorer) planContent() (simple []*fileEntry, jobs []*packJob) {
	idx := rs.r.Index()
	byBlob := map[blob.ID]*blobEntry{}
	byPack := map[blob.ID][]*blobEntry{}
	var packOrder []blob.ID
	for _, f := range rs.files {
		switch {
		case f.skip:
			rs.filesSkipped.Add(1)
			rs.bytesSkipped.Add(int64(f.size))
			rs.opts.Progress.addBytes(int64(f.size))
			rs.opts.Progress.fileDone()
			continue
		case f.dir.failed:
			rs.fail(f.loc(), errors.New("not restored: its directory could not be created"))
			rs.opts.Progress.fileDone()
			continue
		case f.metaOnly:
			simple = append(simple, f)
			continue
		}
		f.sparse = rs.opts.Sparse && f.existing == nil
		var off int64
		complete := true
		for i, id := range f.content {
			h := blob.Handle{ID: id, Type: blob.DataBlob}
			if f.existing.matched(i) {
				n, _ := idx.PlaintextLength(h) // known: compareFile checked
				off += int64(n)
				rs.opts.Progress.addBytes(int64(n))
				continue
			}
			if f.sparse && id == chunk.ZeroChunkID {
				// The zero chunk's ID fixes its length; a hole needs no data.
				off += chunk.MinSize
				rs.opts.Progress.addBytes(chunk.MinSize)
				continue
			}
			be := byBlob[id]
			if be == nil {
				locs := idx.Lookup(h)
				if len(locs) == 0 {
					f.addErr(&BlobError{Blob: id, Err: repo.ErrBlobNotFound})
					complete = false
					break
				}
				loc := locs[0]
				if loc.Length < crypto.Overhead || loc.Length > maxBlobSize || loc.UncompressedLength > maxBlobSize {
					f.addErr(&BlobError{Blob: id, Pack: loc.Pack, Err: fmt.Errorf("index entry with impossible length %d (uncompressed %d)", loc.Length, loc.UncompressedLength)})
					complete = false
					break
				}
				be = &blobEntry{loc: loc}
				byBlob[id] = be
				if _, ok := byPack[loc.Pack]; !ok {
					packOrder = append(packOrder, loc.Pack)
				}
				byPack[loc.Pack] = append(byPack[loc.Pack], be)
			}
			be.dests = append(be.dests, dest{f, off})
			f.dests++
			off += int64(be.loc.PlaintextLength())
		}
		f.blobSize = off
		f.pending = f.dests
		if complete && uint64(off) != f.size {
			rs.warn(f.loc(), fmt.Errorf("the tree gives size %d, the content has %d bytes", f.size, off))
		}
		if f.dests == 0 {
			simple = append(simple, f)
		}
	}
	for _, id := range packOrder {
		jobs = appendJobs(jobs, id, byPack[id])
	}
	return simple, jobs
}

// appendJobs splits the needed blobs of one pack into ranges: a new range
// starts at a large gap, when the range would grow past maxRangeSize, and
// where index entries overlap (only a damaged or hostile index does that).
func appendJobs(jobs []*packJob, pack blob.ID, blobs []*blobEntry) []*packJob {
	slices.SortFunc(blobs, func(a, b *blobEntry) int { return int64Cmp(int64(a.loc.Offset), int64(b.loc.Offset)) })
	var cur *packJob
	for _, b := range blobs {
		start := int64(b.loc.Offset)
		end := start + int64(b.loc.Length)
		if cur == nil || start < cur.end || start-cur.end > maxGap || end-cur.start > maxRangeSize {
			cur = &packJob{pack: pack, start: start, end: end}
			jobs = append(jobs, cur)
		}
		cur.blobs = append(cur.blobs, b)
		cur.end = end
	}
	return jobs
}

func int64Cmp(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// contentWorker is one worker's scratch space for the content phase.
type contentWorker struct {
	br     *bufio.Reader
	sealed []byte
	plain  []byte
	// fds holds the files this worker has open for the current job, and
	// left how many of each file's writes in the job are still to come: a
	// file is closed as soon as the job has nothing more for it.
	fds  map[*fileEntry]int
	left map[*fileEntry]int
}

func newContentWorker() *contentWorker {
	return &contentWorker{
		br:   bufio.NewReaderSize(nil, readBufferSize),
		fds:  map[*fileEntry]int{},
		left: map[*fileEntry]int{},
	}
}

// restoreContent writes every file: first those without blobs to fetch,
// then the pack ranges, all on the same bounded set of workers.
func (rs *restorer) restoreContent(ctx context.Context) error {
	simple, jobs := rs.planContent()
	if rs.opts.DryRun {
		rs.countDryRun()
		return nil
	}
	return forEach(ctx, rs.workers, len(simple)+len(jobs), newContentWorker,
		func(ctx context.Context, w *contentWorker, i int) error {
			if i < len(simple) {
				rs.restoreSimple(simple[i])
				return nil
			}
			return rs.runJob(ctx, w, jobs[i-len(simple)])
		})
}

// countDryRun counts what a real run would restore.
func (rs *restorer) countDryRun() {
	for _, f := range rs.files {
		if !f.skip && !f.dir.failed {
			rs.opts.Progress.fileDone() // the others were counted already
		}
		switch {
		case f.skip || f.dir.failed:
		case f.metaOnly:
			rs.filesSkipped.Add(1)
			rs.bytesSkipped.Add(int64(f.size))
		case len(f.errs) > 0:
			rs.fail(f.loc(), errors.Join(f.errs...))
		default:
			rs.filesRestored.Add(1)
			rs.bytesRestored.Add(int64(f.size))
		}
	}
}

// restoreSimple handles a file without blobs to fetch: one whose content is
// already right (only metadata), or that is empty or all holes.
func (rs *restorer) restoreSimple(f *fileEntry) {
	if f.metaOnly {
		defer rs.opts.Progress.fileDone()
		p := f.path()
		fh, err := openRead(p)
		if err != nil {
			rs.fail(f.loc(), fmt.Errorf("restore metadata: %w", err))
			return
		}
		if err := rs.applyMetadata(f.loc(), metaTarget{fd: int(fh.Fd()), path: p}, &f.meta, true, f.dir.setgid); err != nil {
			rs.fail(f.loc(), err)
		}
		_ = fh.Close() // opened for reading: nothing to lose
		rs.filesSkipped.Add(1)
		rs.bytesSkipped.Add(int64(f.size))
		rs.opts.Progress.addBytes(int64(f.size))
		return
	}
	fd := -1
	if len(f.errs) == 0 {
		var err error
		if fd, err = rs.createFile(f); err != nil {
			f.addErr(err)
		}
	}
	rs.finishFile(f, fd)
	if fd >= 0 {
		if err := unix.Close(fd); err != nil {
			rs.fail(f.loc(), fmt.Errorf("close %s: %w", f.path(), err))
		}
	}
}

// runJob reads one pack range and hands each blob to its files. The
// backend may call the read callback again after a failure; blobs already
// handed on are then skipped. Blobs the range could not deliver are tried
// once more on their own, from every copy the index knows.
func (rs *restorer) runJob(ctx context.Context, w *contentWorker, j *packJob) error {
	// A job that ran to its end leaves no file open; one stopped by
	// cancellation may.
	defer w.closeAll()
	clear(w.left)
	for _, b := range j.blobs {
		for _, d := range b.dests {
			w.left[d.f]++
		}
	}
	next := 0
	h := backend.Handle{Type: backend.PackFile, Name: j.pack.String()}
	err := rs.r.Backend().Load(ctx, h, int(j.end-j.start), j.start, func(rd io.Reader) error {
		w.br.Reset(rd)
		pos := j.start
		for i, b := range j.blobs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if gap := int64(b.loc.Offset) - pos; gap > 0 {
				if _, err := w.br.Discard(int(gap)); err != nil {
					return fmt.Errorf("read pack: %w", err)
				}
			}
			w.sealed = grow(w.sealed, int(b.loc.Length))
			if _, err := io.ReadFull(w.br, w.sealed); err != nil {
				return fmt.Errorf("read pack: %w", err)
			}
			pos = int64(b.loc.Offset) + int64(b.loc.Length)
			if i < next {
				continue
			}
			plain, err := rs.openBlob(w, b, w.sealed)
			rs.deliver(ctx, w, b, plain, err)
			next = i + 1
		}
		return nil
	})
	w.br.Reset(nil)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err != nil {
		for _, b := range j.blobs[next:] {
			rs.deliver(ctx, w, b, nil, err)
		}
	}
	return ctx.Err()
}

// closeAll closes the files a cancelled job left open. The restore is
// being abandoned, so there is no one to tell about close errors.
func (w *contentWorker) closeAll() {
	for f, fd := range w.fds {
		_ = unix.Close(fd)
		delete(w.fds, f)
	}
}

// grow returns b resized to n, reallocating with headroom so that a worker
// meeting ever larger blobs reallocates only a few times.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n, max(n, min(2*cap(b), maxBlobSize)))
	}
	return b[:n]
}

// The decoder is shared (DecodeAll is safe for concurrent use). The cap
// limit makes it refuse to write past the expected length, so a frame that
// claims more than the index does cannot make it allocate.
var (
	decoderOnce sync.Once
	decoder     *zstd.Decoder
	decoderErr  error
)

func zstdDecoder() (*zstd.Decoder, error) {
	decoderOnce.Do(func() {
		decoder, decoderErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(maxBlobSize),
			zstd.WithDecodeAllCapLimit(true))
	})
	return decoder, decoderErr
}

// openBlob decrypts, decompresses and checks one sealed blob. The
// plaintext is valid until the worker's next blob.
func (rs *restorer) openBlob(w *contentWorker, b *blobEntry, sealed []byte) ([]byte, error) {
	var plain []byte
	var err error
	ulen := int(b.loc.UncompressedLength)
	if ulen == 0 {
		// Straight into the plaintext buffer: decrypting in place would
		// first move the whole ciphertext down by the IV's length.
		plain, err = rs.r.Key().Open(w.plain[:0], sealed)
		if err == nil {
			w.plain = plain[:0] // keep what Open grew
		}
	} else {
		plain, err = rs.r.Key().OpenInPlace(sealed)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	if ulen != 0 {
		dec, err := zstdDecoder()
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		w.plain = grow(w.plain, ulen)
		out, err := dec.DecodeAll(plain, w.plain[:0])
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
		if len(out) != ulen {
			return nil, fmt.Errorf("decompressed to %d bytes, index says %d", len(out), ulen)
		}
		plain = out
	}
	if got := blob.Hash(plain); got != b.loc.ID {
		return nil, fmt.Errorf("content hashes to %s: wrong data", got.Str())
	}
	return plain, nil
}

// deliver writes one blob to all its places, or, when it could not be
// read, first tries every stored copy through the repository (another
// pack, or this one read again on its own: a truncated pack still has
// the blobs before the damage), then fails its files.
func (rs *restorer) deliver(ctx context.Context, w *contentWorker, b *blobEntry, plain []byte, err error) {
	if err != nil && ctx.Err() == nil {
		if p, lerr := rs.r.LoadBlob(ctx, blob.DataBlob, b.loc.ID, w.plain); lerr == nil {
			plain, err = p, nil
		}
	}
	if err != nil {
		err = &BlobError{Blob: b.loc.ID, Pack: b.loc.Pack, Err: err}
	}
	for _, d := range b.dests {
		rs.writeDest(w, d, plain, err)
	}
}

// errReported marks a failure already recorded for the file.
var errReported = errors.New("already reported")

// writeDest writes one blob to one file (or records why it cannot), and
// completes the file when this was its last write.
func (rs *restorer) writeDest(w *contentWorker, d dest, data []byte, err error) {
	f := d.f
	if err == nil {
		var fd int
		if fd, err = w.open(rs, f); err == nil {
			if err = writeAt(fd, data, d.off, f.sparse); err != nil {
				err = fmt.Errorf("write %s at offset %d: %w", f.path(), d.off, err)
			} else {
				rs.opts.Progress.addBytes(int64(len(data)))
			}
		}
	}
	w.left[f]--
	fd, open := w.fds[f]
	f.mu.Lock()
	if err != nil && err != errReported {
		f.addErr(err)
	}
	f.pending--
	last := f.pending == 0
	if !last && open && w.left[f] == 0 {
		// Close while holding the lock, so that whoever writes last sees a
		// close error before completing the file.
		if cerr := unix.Close(fd); cerr != nil {
			f.addErr(fmt.Errorf("close %s: %w", f.path(), cerr))
		}
		delete(w.fds, f)
	}
	f.mu.Unlock()
	if !last {
		return
	}
	if !open {
		fd = -1
	}
	rs.finishFile(f, fd)
	if open {
		delete(w.fds, f)
		if cerr := unix.Close(fd); cerr != nil {
			rs.fail(f.loc(), fmt.Errorf("close %s: %w", f.path(), cerr))
		}
	}
}

// open returns this worker's descriptor for f, creating the file if no one
// has yet. A file that could not be created is reported once; later writes
// get errReported.
func (w *contentWorker) open(rs *restorer, f *fileEntry) (int, error) {
	if fd, ok := w.fds[f]; ok {
		return fd, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var fd int
	var err error
	switch {
	case f.createFailed:
		return -1, errReported
	case !f.created:
		f.created = true
		fd, err = rs.createFile(f)
		if err != nil {
			f.createFailed = true
			f.addErr(err)
			return -1, errReported
		}
	default:
		if fd, err = openWrite(f.path()); err != nil {
			return -1, err
		}
	}
	w.fds[f] = fd
	return fd, nil
}
