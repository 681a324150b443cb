package rest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cairn-backup/cairn/backend"
)

// Load calls fn with a reader of length bytes of h starting at offset, or of
// the rest of the file when length is 0. Like restic it always sends a
// Range header; it accepts 206 and also 200 from servers that ignore
// ranges (then it skips to offset itself), and it checks that exactly the
// requested number of bytes arrives: a file that ends early gives an error
// wrapping backend.ErrShortRead.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	if length < 0 || offset < 0 {
		return b.opError("load", h, fmt.Errorf("invalid range: length %d at offset %d", length, offset))
	}
	body, err := b.openRange(ctx, h, length, offset)
	if err != nil {
		return b.opError("load", h, err)
	}
	err = fn(body)
	if cerr := body.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return b.opError("load", h, err)
	}
	return nil
}

// openRange sends the ranged GET and returns a reader that yields exactly
// the requested bytes.
func (b *Backend) openRange(ctx context.Context, h backend.Handle, length int, offset int64) (io.ReadCloser, error) {
	u, err := b.fileURL(h)
	if err != nil {
		return nil, err
	}
	req, err := b.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if length > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, offset+int64(length)-1))
	} else {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	rc := &body{ReadCloser: resp.Body, remaining: -1}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); ok && start != offset {
			discard(resp)
			return nil, fmt.Errorf("server sent a range starting at byte %d, want %d", start, offset)
		}
	case http.StatusOK:
		// The server ignored the range and sends the whole file.
		if resp.ContentLength >= 0 && resp.ContentLength < offset+int64(length) {
			discard(resp)
			return nil, fmt.Errorf("%w: %d-byte file, range ends at %d", backend.ErrShortRead, resp.ContentLength, offset+int64(length))
		}
		if n, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
			_ = resp.Body.Close()
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: file ends at byte %d before offset %d", backend.ErrShortRead, n, offset)
			}
			return nil, fmt.Errorf("skip to offset %d: %w", offset, err)
		}
	default:
		discard(resp)
		return nil, &StatusError{Op: "load", StatusCode: resp.StatusCode, Status: resp.Status}
	}
	if length > 0 {
		if resp.StatusCode == http.StatusPartialContent && resp.ContentLength >= 0 && resp.ContentLength != int64(length) {
			discard(resp)
			if resp.ContentLength < int64(length) {
				return nil, fmt.Errorf("%w: server sent %d bytes of a %d-byte range at offset %d",
					backend.ErrShortRead, resp.ContentLength, length, offset)
			}
			return nil, fmt.Errorf("server sent %d bytes for a %d-byte range", resp.ContentLength, length)
		}
		rc.remaining = int64(length)
	}
	return rc, nil
}

// body is a response body limited to the requested length. Reaching the end
// of the body before the length is an ErrShortRead; Close drains a little
// so the connection can be reused.
type body struct {
	io.ReadCloser
	remaining int64 // bytes still owed, or -1 for "to the end"
	read      int64
}

func (b *body) Read(p []byte) (int, error) {
	if b.remaining == 0 {
		return 0, io.EOF
	}
	if b.remaining > 0 && int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.ReadCloser.Read(p)
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
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// net/http's way of saying the body was shorter than its
		// Content-Length: the connection broke, not the file.
		return n, fmt.Errorf("read body: connection closed after %d bytes: %w", b.read, err)
	}
	return n, err
}

func (b *body) Close() error {
	_, _ = io.Copy(io.Discard, io.LimitReader(b.ReadCloser, maxDrain))
	return b.ReadCloser.Close()
}

// contentRangeStart returns the first byte of a "bytes START-END/SIZE"
// Content-Range header.
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	return parseInt64(start)
}
