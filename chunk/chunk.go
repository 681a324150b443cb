// Package chunk splits data into content-defined chunks exactly as restic
// does, using github.com/restic/chunker with the repository's polynomial.
// Identical chunking is what lets data blobs deduplicate between cairn and
// restic.
package chunk

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"strconv"

	"github.com/restic/chunker"
)

// Chunk size bounds used by restic.
const (
	MinSize = chunker.MinSize // 512 KiB
	MaxSize = chunker.MaxSize // 8 MiB
)

// ZeroChunkID is the blob ID of MinSize zero bytes. An all-zero region is
// always cut into chunks of exactly MinSize whatever the polynomial, so sparse
// files are mostly repeats of this blob.
var ZeroChunkID = sha256.Sum256(make([]byte, MinSize))

// Pol is a chunking polynomial.
type Pol = chunker.Pol

// RandomPolynomial returns a new random irreducible polynomial of degree 53,
// as restic's init does.
func RandomPolynomial() (Pol, error) {
	p, err := chunker.RandomPolynomial()
	if err != nil {
		return 0, fmt.Errorf("chunker polynomial: %w", err)
	}
	return p, nil
}

// ParsePol parses the hex form stored in a repository config and checks that
// the polynomial is usable (irreducible, degree at most 53).
func ParsePol(s string) (Pol, error) {
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid chunker polynomial %q: %w", s, err)
	}
	p := Pol(v)
	if p.Deg() > 53 || p.Deg() < 9 {
		return 0, fmt.Errorf("invalid chunker polynomial %q: degree %d", s, p.Deg())
	}
	if !p.Irreducible() {
		return 0, fmt.Errorf("invalid chunker polynomial %q: not irreducible", s)
	}
	return p, nil
}

// FormatPol returns the lowercase hex form without leading zeros that config
// files use.
func FormatPol(p Pol) string { return strconv.FormatUint(uint64(p), 16) }

// Chunker cuts a stream into chunks. A Chunker is reused across files with
// Reset to keep its 512 KiB read buffer; it is not safe for concurrent use.
type Chunker struct {
	pol       Pol
	c         *chunker.Chunker
	smallMode bool   // Reset read the whole input
	small     []byte // that input, until Next returns it
	done      bool
	rd        strictReader
}

// strictReader hands the input on, except that an io.ErrUnexpectedEOF the
// input itself returns (archive/tar does for a member cut short) comes
// back wrapped. Both io.ReadFull and restic's chunker use that bare
// sentinel to mean "the input ended early, which is fine": a source's
// truncation would be taken for a short last chunk, and the chunker, told
// "no bytes, no error", would read again forever.
type strictReader struct{ r io.Reader }

func (s *strictReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.ErrUnexpectedEOF {
		err = fmt.Errorf("input ended early: %w", err)
	}
	return n, err
}

// New returns a Chunker for polynomial pol.
func New(pol Pol) *Chunker {
	return &Chunker{pol: pol}
}

// Reset starts chunking rd. When size is known and below MinSize (a small
// file), Reset reads rd directly into buf and returns it as the only chunk
// without running the rolling hash: no cut can fall before MinSize bytes, so
// the result is the same. Pass size -1 when the size is unknown.
func (c *Chunker) Reset(rd io.Reader, size int64, buf []byte) error {
	c.small, c.done, c.smallMode = nil, false, false
	c.rd.r = rd
	rd = &c.rd
	if size >= 0 && size < MinSize {
		// Read one byte more than MinSize to notice a file that grew; a file
		// that grew past MinSize goes through the chunker after all.
		if cap(buf) < MinSize+1 {
			buf = make([]byte, 0, MinSize+1)
		}
		n, err := io.ReadFull(rd, buf[:MinSize+1])
		switch {
		case err == nil:
			rd = io.MultiReader(bytes.NewReader(append([]byte(nil), buf[:n]...)), rd)
		case err == io.EOF || err == io.ErrUnexpectedEOF: // from ReadFull itself: the input ended
			c.small = buf[:n]
			c.done = n == 0
			c.smallMode = true
			return nil
		default:
			return err
		}
	}
	if c.c == nil {
		c.c = chunker.New(rd, c.pol)
	} else {
		c.c.Reset(rd, c.pol)
	}
	return nil
}

// Small reports whether Reset read the whole input as one chunk (into the
// buffer given to Reset); Next then ignores its buffer argument.
func (c *Chunker) Small() bool { return c.smallMode }

// Next returns the next chunk, stored in buf when it is large enough (pass the
// previous chunk's slice back to reuse it), or io.EOF after the last chunk.
// Empty input yields no chunk.
func (c *Chunker) Next(buf []byte) ([]byte, error) {
	if c.done {
		return nil, io.EOF
	}
	if c.small != nil {
		data := c.small
		c.small, c.done = nil, true
		return data, nil
	}
	if c.c == nil || c.smallMode {
		return nil, io.EOF
	}
	ch, err := c.c.Next(buf)
	if err != nil {
		if err == io.EOF {
			c.done = true
		}
		return nil, err
	}
	return ch.Data, nil
}
