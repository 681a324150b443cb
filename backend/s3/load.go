package s3

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/cairn-backup/cairn/backend"
)

// maxDrain bounds how much of an unread body Load reads to keep its
// connection reusable.
const maxDrain = 64 << 10

// Load calls fn with a reader of length bytes of h starting at offset, or of
// the rest of the file when length is 0. The answer's length is checked: a
// file that ends before offset+length gives an error wrapping
// backend.ErrShortRead.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	if length < 0 || offset < 0 {
		return b.opError("load", h, fmt.Errorf("invalid range: length %d at offset %d", length, offset))
	}
	name, err := b.objectName(h)
	if err != nil {
		return b.opError("load", h, err)
	}
	opts := minio.GetObjectOptions{}
	switch {
	case length > 0:
		err = opts.SetRange(offset, offset+int64(length)-1)
	case offset > 0:
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		return b.opError("load", h, err)
	}
	rc, info, _, err := b.core.GetObject(ctx, b.bucket, name, opts)
	if err != nil {
		return b.opError("load", h, err)
	}
	body := &exactBody{rc: rc, remaining: -1}
	if length > 0 {
		if info.Size >= 0 && info.Size != int64(length) {
			body.Close()
			if info.Size < int64(length) {
				return b.opError("load", h, fmt.Errorf("%w: server sent %d bytes of a %d-byte range at offset %d",
					backend.ErrShortRead, info.Size, length, offset))
			}
			return b.opError("load", h, fmt.Errorf("server sent %d bytes for a %d-byte range", info.Size, length))
		}
		body.remaining = int64(length)
	}
	err = fn(body)
	body.Close()
	if err != nil {
		return b.opError("load", h, err)
	}
	return nil
}

// exactBody yields at most remaining bytes and turns an early end into
// ErrShortRead.
type exactBody struct {
	rc        io.ReadCloser
	remaining int64 // bytes still owed, or -1 for "to the end"
	read      int64
}

func (b *exactBody) Read(p []byte) (int, error) {
	if b.remaining == 0 {
		return 0, io.EOF
	}
	if b.remaining > 0 && int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.rc.Read(p)
	b.read += int64(n)
	if b.remaining > 0 {
		b.remaining -= int64(n)
		if errors.Is(err, io.EOF) && b.remaining > 0 {
			return n, fmt.Errorf("%w: body ended after %d bytes, %d missing", backend.ErrShortRead, b.read, b.remaining)
		}
		if b.remaining == 0 && err == nil {
			err = io.EOF
		}
	}
	return n, err
}

// Close drains a little, so the connection can be reused, and closes.
func (b *exactBody) Close() {
	_, _ = io.Copy(io.Discard, io.LimitReader(b.rc, maxDrain))
	_ = b.rc.Close()
}
