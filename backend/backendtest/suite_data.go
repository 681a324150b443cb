package backendtest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

// largeSize is above 20 MiB and not a multiple of any block or part size, so
// chunked uploads and downloads must handle a ragged last piece.
const largeSize = 20<<20 + 12345

func testEmpty(t *testing.T, be backend.Backend) {
	for _, ft := range listTypes {
		checkList(t, be, ft, nil)
	}
	checkNotExist(t, be, backend.Handle{Type: backend.ConfigFile})
}

func testSaveLoadEveryType(t *testing.T, be backend.Backend) {
	for i, ft := range allTypes {
		data := Random(uint64(100+i), 1000+37*i)
		h := saveNew(t, be, ft, data)
		checkContent(t, be, h, data)
		if ft != backend.ConfigFile {
			checkList(t, be, ft, map[string]int64{h.Name: int64(len(data))})
		}
	}
}

func testZeroLength(t *testing.T, be backend.Backend) {
	for _, ft := range []backend.FileType{backend.ConfigFile, backend.PackFile, backend.SnapshotFile} {
		h := HandleFor(ft, []byte(ft.String()))
		save(t, be, h, nil)
		checkContent(t, be, h, nil)
		if got := load(t, be, h, 0, 0); len(got) != 0 {
			t.Errorf("Load(%v, 0, 0) of an empty file returned %d bytes", h, len(got))
		}
		if ft != backend.ConfigFile {
			checkList(t, be, ft, map[string]int64{h.Name: 0})
		}
		for _, r := range []struct {
			length int
			offset int64
		}{{1, 0}, {0, 1}, {5, 3}} {
			err := be.Load(t.Context(), h, r.length, r.offset, drain)
			if !errors.Is(err, backend.ErrShortRead) {
				t.Errorf("Load(%v, length %d, offset %d) of an empty file = %v, want an error wrapping ErrShortRead",
					h, r.length, r.offset, err)
			}
		}
	}
}

func testLargeFile(t *testing.T, be backend.Backend) {
	data := Random(2, largeSize)
	h := saveNew(t, be, backend.PackFile, data)
	got := load(t, be, h, 0, 0)
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("Load(%v) of a %d-byte file returned %d bytes with different content (%s)",
			h, len(data), len(got), firstDiff(got, data))
	}
	fi, err := be.Stat(t.Context(), h)
	if err != nil || fi.Size != largeSize {
		t.Fatalf("Stat(%v) = (%+v, %v), want size %d", h, fi, err, largeSize)
	}
	// The tail crosses every block boundary a chunked transfer might use.
	tail := load(t, be, h, 3<<20, largeSize-3<<20)
	if !bytes.Equal(tail, data[largeSize-3<<20:]) {
		t.Fatalf("Load(%v) of the last 3 MiB returned wrong data", h)
	}
	checkList(t, be, backend.PackFile, map[string]int64{h.Name: largeSize})
}

// testSaveFromFile saves through a *backend.FileReader, the reader pack
// uploads use. The file is longer than the reader and its offset is not at
// the start: a backend that copies from the *os.File directly (for
// copy_file_range) must honour the reader's length and start at byte 0.
func testSaveFromFile(t *testing.T, be backend.Backend) {
	for _, size := range []int{0, 1, 3<<20 + 7} {
		t.Run(fmt.Sprintf("%dbytes", size), func(t *testing.T) {
			data := Random(uint64(3+size), size)
			f, err := os.Create(filepath.Join(t.TempDir(), "pack"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			garbage := Random(4, 1000)
			if _, err := f.Write(append(append([]byte(nil), data...), garbage...)); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Seek(int64(size/2+3), io.SeekStart); err != nil {
				t.Fatal(err)
			}
			h := HandleFor(backend.PackFile, data)
			if err := be.Save(t.Context(), h, backend.NewFileReader(f, int64(size), nil)); err != nil {
				t.Fatalf("Save(%v) from a file: %v", h, err)
			}
			checkContent(t, be, h, data)
		})
	}
}

// drain is a Load callback that reads everything.
func drain(rd io.Reader) error {
	_, err := io.Copy(io.Discard, rd)
	return err
}

func testRangedLoad(t *testing.T, be backend.Backend) {
	const size = 64<<10 + 17
	data := Random(5, size)
	h := saveNew(t, be, backend.PackFile, data)
	tests := []struct {
		name   string
		offset int64
		length int
		short  bool // the range runs past the end: ErrShortRead
	}{
		{name: "whole", offset: 0, length: 0},
		{name: "whole explicit", offset: 0, length: size},
		{name: "prefix", offset: 0, length: 100},
		{name: "middle", offset: 1000, length: 5000},
		{name: "rest from middle", offset: size - 100, length: 0},
		{name: "exact end", offset: size - 100, length: 100},
		{name: "last byte", offset: size - 1, length: 1},
		{name: "first byte", offset: 0, length: 1},
		{name: "one byte too many", offset: 0, length: size + 1, short: true},
		{name: "straddles end", offset: size - 50, length: 100, short: true},
		{name: "starts at end", offset: size, length: 1, short: true},
		{name: "starts past end", offset: size + 100, length: 10, short: true},
		{name: "rest from past end", offset: size + 1, length: 0, short: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			err := be.Load(t.Context(), h, tc.length, tc.offset, func(rd io.Reader) error {
				b, err := io.ReadAll(rd)
				got = b
				return err
			})
			if tc.short {
				if !errors.Is(err, backend.ErrShortRead) {
					t.Fatalf("Load(length %d, offset %d) of a %d-byte file = %v (read %d bytes), want an error wrapping ErrShortRead",
						tc.length, tc.offset, size, err, len(got))
				}
				if errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Load past the end = %v, which wrongly claims the file does not exist", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(length %d, offset %d): %v", tc.length, tc.offset, err)
			}
			end := int64(size)
			if tc.length > 0 {
				end = tc.offset + int64(tc.length)
			}
			if want := data[tc.offset:end]; !bytes.Equal(got, want) {
				t.Fatalf("Load(length %d, offset %d) returned %d bytes, want %d (%s)",
					tc.length, tc.offset, len(got), len(want), firstDiff(got, want))
			}
		})
	}
	// "The rest from exactly the end" is the one range the contract leaves
	// open: an HTTP Range "bytes=<size>-" is unsatisfiable, a file is not.
	// Either answer is fine, but it must be empty or ErrShortRead.
	var got []byte
	err := be.Load(t.Context(), h, 0, size, func(rd io.Reader) error {
		b, err := io.ReadAll(rd)
		got = b
		return err
	})
	if err != nil && !errors.Is(err, backend.ErrShortRead) {
		t.Errorf("Load(length 0, offset = size) = %v, want success or an error wrapping ErrShortRead", err)
	}
	if err == nil && len(got) != 0 {
		t.Errorf("Load(length 0, offset = size) returned %d bytes, want none", len(got))
	}
}

func testRandomRanges(t *testing.T, be backend.Backend) {
	const size = 300<<10 + 3
	data := Random(6, size)
	h := saveNew(t, be, backend.PackFile, data)
	rng := rand.New(rand.NewPCG(6, 6))
	for range 40 {
		offset := rng.Int64N(size)
		length := rng.IntN(int(size-offset) + 1)
		end := offset + int64(length)
		if length == 0 {
			end = size
		}
		if got := load(t, be, h, length, offset); !bytes.Equal(got, data[offset:end]) {
			t.Fatalf("Load(length %d, offset %d) returned wrong data (%s)", length, offset, firstDiff(got, data[offset:end]))
		}
	}
}

func testInvalidRange(t *testing.T, be backend.Backend) {
	data := Random(7, 100)
	h := saveNew(t, be, backend.PackFile, data)
	for _, r := range []struct {
		length int
		offset int64
	}{{-1, 0}, {10, -1}, {-5, -5}} {
		called := false
		err := be.Load(t.Context(), h, r.length, r.offset, func(io.Reader) error { called = true; return nil })
		if err == nil {
			t.Errorf("Load(length %d, offset %d) succeeded, want an error", r.length, r.offset)
		}
		if called {
			t.Errorf("Load(length %d, offset %d) called fn", r.length, r.offset)
		}
	}
	checkContent(t, be, h, data)
}

func testMissing(t *testing.T, be backend.Backend) {
	for _, ft := range allTypes {
		h := HandleFor(ft, []byte("never saved"))
		checkNotExist(t, be, h)
		err := be.Remove(t.Context(), h)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Remove(%v) of a missing file = %v, want an error wrapping fs.ErrNotExist", h, err)
		}
		if errors.Is(err, backend.ErrShortRead) {
			t.Errorf("Remove(%v) of a missing file = %v, which wraps ErrShortRead", h, err)
		}
		err = be.Load(t.Context(), h, 10, 5, drain)
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, backend.ErrShortRead) {
			t.Errorf("ranged Load(%v) of a missing file = %v, want fs.ErrNotExist and not ErrShortRead", h, err)
		}
	}
}

// testLoadCallbackError checks that fn's error comes back and that every call
// of fn (a retrying backend may call it again) sees the whole range from the
// start.
func testLoadCallbackError(t *testing.T, be backend.Backend) {
	data := Random(8, 10000)
	h := saveNew(t, be, backend.IndexFile, data)
	errDeliberate := errors.New("deliberate callback error")
	calls := 0
	err := be.Load(t.Context(), h, 5000, 100, func(rd io.Reader) error {
		calls++
		got, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, data[100:5100]) {
			t.Errorf("call %d of fn saw wrong data (%s)", calls, firstDiff(got, data[100:5100]))
		}
		return errDeliberate
	})
	if !errors.Is(err, errDeliberate) {
		t.Fatalf("Load returned %v, want the callback's error", err)
	}
	if calls < 1 {
		t.Fatalf("fn was never called")
	}
	checkContent(t, be, h, data)
}

// testLoadPartialConsumption checks that fn need not read everything: a
// pack header read stops early.
func testLoadPartialConsumption(t *testing.T, be backend.Backend) {
	data := Random(9, 200<<10)
	h := saveNew(t, be, backend.PackFile, data)
	for _, n := range []int{0, 1, 4096} {
		var got []byte
		err := be.Load(t.Context(), h, 0, 0, func(rd io.Reader) error {
			got = make([]byte, n)
			_, err := io.ReadFull(rd, got)
			return err
		})
		if err != nil {
			t.Fatalf("Load where fn reads only %d bytes: %v", n, err)
		}
		if !bytes.Equal(got, data[:n]) {
			t.Fatalf("the first %d bytes differ", n)
		}
	}
}

func testStatSizes(t *testing.T, be backend.Backend) {
	want := make(map[string]int64)
	for i, size := range []int{1, 511, 4095, 4096, 4097, 1<<20 + 3} {
		data := Random(uint64(10+i), size)
		h := saveNew(t, be, backend.IndexFile, data)
		fi, err := be.Stat(t.Context(), h)
		if err != nil {
			t.Fatalf("Stat(%v): %v", h, err)
		}
		if fi.Size != int64(size) {
			t.Errorf("Stat(%v).Size = %d, want %d", h, fi.Size, size)
		}
		want[h.Name] = int64(size)
	}
	checkList(t, be, backend.IndexFile, want)
}

// testIsMetadataIgnored checks that IsMetadata is a placement hint and not
// part of the name: a tree pack saved with it is found without it.
func testIsMetadataIgnored(t *testing.T, be backend.Backend) {
	data := Random(11, 5000)
	h := HandleFor(backend.PackFile, data)
	h.IsMetadata = true
	save(t, be, h, data)
	plain := h
	plain.IsMetadata = false
	checkContent(t, be, plain, data)
	checkContent(t, be, h, data)
	checkList(t, be, backend.PackFile, map[string]int64{h.Name: int64(len(data))})
	if err := be.Remove(t.Context(), plain); err != nil {
		t.Fatalf("Remove(%v) without IsMetadata: %v", plain, err)
	}
	checkNotExist(t, be, h)
}
