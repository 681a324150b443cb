package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

// fileJob is a regular file to read.
type fileJob struct {
	frame    *dirFrame
	slot     *slot
	node     *tree.Node
	open     func(context.Context) (io.ReadCloser, error)
	hostPath string
	size     int64

	chunks []*chunkJob
	// pending counts chunks not yet saved plus one while reading; whoever
	// brings it to zero completes the file.
	pending atomic.Int64
	bytes   int64
	failed  atomic.Bool
	links   jobLinks // hard links of a streamed walk waiting for the content
}

// chunkJob is one chunk of a file for the blob workers.
type chunkJob struct {
	file *fileJob
	data []byte
	id   blob.ID // set by whoever saves the chunk
}

func (b *backuper) fileWorker(ctx context.Context) error {
	ch := chunk.New(b.r.Config().Polynomial)
	for job := range b.files {
		if err := b.readFile(ctx, ch, job); err != nil {
			return err
		}
	}
	return nil
}

func (b *backuper) blobWorker(ctx context.Context) error {
	for c := range b.blobs {
		if err := b.saveChunk(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (b *backuper) getChunkBuf() []byte {
	if p, ok := b.chunkBufs.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, chunk.MinSize*2)
}

func (b *backuper) putChunkBuf(buf []byte) {
	if cap(buf) <= chunk.MaxSize {
		b.chunkBufs.Put(&buf)
	}
}

// readFile reads one file, cutting it into chunks. A single-chunk file is
// saved right here; the chunks of larger files go to the blob workers so
// that hashing, compression and encryption of one big file use every core.
// A file that cannot be read is left out with a warning; only repository
// errors end the backup.
func (b *backuper) readFile(ctx context.Context, ch *chunk.Chunker, job *fileJob) error {
	job.pending.Store(1)
	rd, err := job.open(ctx)
	if err != nil {
		job.failed.Store(true)
		b.warn(job.hostPath, err)
		return b.fileDone(ctx, job)
	}
	defer rd.Close()
	first := b.getChunkBuf()
	if err := ch.Reset(rd, job.size, first); err != nil {
		b.putChunkBuf(first)
		job.failed.Store(true)
		b.warn(job.hostPath, fmt.Errorf("read: %w", err))
		return b.fileDone(ctx, job)
	}
	if !ch.Small() {
		b.putChunkBuf(first)
	}
	for i := 0; ; i++ {
		var buf []byte
		if !ch.Small() {
			buf = b.getChunkBuf()
		}
		data, err := ch.Next(buf)
		if errors.Is(err, io.EOF) {
			if buf != nil {
				b.putChunkBuf(buf)
			}
			break
		}
		if err != nil {
			job.failed.Store(true)
			b.warn(job.hostPath, fmt.Errorf("read: %w", err))
			break
		}
		job.bytes += int64(len(data))
		job.pending.Add(1)
		c := &chunkJob{file: job, data: data}
		job.chunks = append(job.chunks, c)
		if i == 0 && int64(len(data)) == job.size && job.size < chunk.MinSize {
			// The whole (small) file: no hand-off.
			if err := b.saveChunk(ctx, c); err != nil {
				return err
			}
			continue
		}
		select {
		case b.blobs <- c:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return b.fileDone(ctx, job)
}

// saveChunk hashes and stores one chunk and records its ID in the file.
func (b *backuper) saveChunk(ctx context.Context, c *chunkJob) error {
	var id blob.ID
	if len(c.data) == chunk.MinSize && isZero(c.data) {
		id = chunk.ZeroChunkID // sparse regions: skip hashing 512 KiB of zeros
	} else {
		id = blob.Hash(c.data)
	}
	if !c.file.failed.Load() {
		if _, err := b.saver.SaveBlob(ctx, blob.DataBlob, c.data, id); err != nil {
			return fmt.Errorf("save data of %s: %w", c.file.hostPath, err)
		}
	}
	// The atomic decrement in fileDone orders this write before the
	// goroutine that assembles the content list reads it.
	c.id = id
	b.putChunkBuf(c.data)
	c.data = nil
	return b.fileDone(ctx, c.file)
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// fileDone drops one pending count; the last completes the file's node and
// reports it to its directory.
func (b *backuper) fileDone(ctx context.Context, job *fileJob) error {
	if job.pending.Add(-1) != 0 {
		return nil
	}
	// A hard link seen meanwhile may be updating the node's link count.
	job.links.mu.Lock()
	if !job.failed.Load() {
		n := job.node
		n.Content = make([]blob.ID, len(job.chunks))
		for i, c := range job.chunks {
			n.Content[i] = c.id
		}
		// restic records what it read, not what stat said.
		n.Size = uint64(job.bytes)
		job.slot.node = n
		if job.slot.prev == nil {
			b.filesNew.Add(1)
		} else if job.slot.prev.Equal(n) {
			b.filesUnmodified.Add(1)
		} else {
			b.filesChanged.Add(1)
		}
		b.bytesProcessed.Add(job.bytes)
		if b.opts.Progress != nil {
			b.opts.Progress.Files.Add(1)
			b.opts.Progress.Bytes.Add(job.bytes)
		}
	}
	// Streamed walks keep the job for hard links until the end: its
	// chunks are not needed any more.
	job.chunks = nil
	job.links.mu.Unlock()
	if err := b.finishLinks(ctx, job); err != nil {
		return err
	}
	return b.childDone(ctx, job.frame)
}
