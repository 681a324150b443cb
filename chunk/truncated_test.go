package chunk

import (
	"errors"
	"io"
	"testing"
	"time"
)

// cutShort returns its data, then io.ErrUnexpectedEOF forever, as
// archive/tar does for a member that the stream cut short.
type cutShort struct{ data []byte }

func (c *cutShort) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

// A source reporting its own truncation is an error, never the end of the
// data: neither the small-file path nor the rolling chunker may take it
// for a short last chunk, or loop on it.
func TestSourceTruncationIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		size int64
	}{
		{"small", 1000, 4096},
		{"small grown", 1000, 10},
		{"unknown size", 1000, -1},
		{"large", 3 * MaxSize, 4 * MaxSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				c := New(testPol(t))
				if err := c.Reset(&cutShort{data: make([]byte, tc.n)}, tc.size, nil); err != nil {
					done <- err
					return
				}
				var buf []byte
				for {
					ch, err := c.Next(buf)
					if err != nil {
						done <- err
						return
					}
					buf = ch
				}
			}()
			select {
			case err := <-done:
				if err == io.EOF || !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("got %v, want the source's truncation error", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("chunking a truncated source never ended")
			}
		})
	}
}

func testPol(t *testing.T) Pol {
	t.Helper()
	pol, err := ParsePol("23e30c78ef838f")
	if err != nil {
		t.Fatal(err)
	}
	return pol
}
