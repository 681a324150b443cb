package pack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo/blob"
)

func buildPack(t testing.TB, key *crypto.Key, n int, compressed bool) ([]byte, []Blob) {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, key)
	for i := 0; i < n; i++ {
		pt := bytes.Repeat([]byte{byte(i)}, i+1)
		h := blob.Handle{ID: blob.Hash(pt), Type: blob.DataBlob}
		if i%3 == 2 {
			h.Type = blob.TreeBlob
		}
		var ul uint32
		if compressed && i%2 == 0 {
			ul = uint32(len(pt))
		}
		if err := w.Add(h, key.Seal(nil, pt), ul); err != nil {
			t.Fatal(err)
		}
	}
	size, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(buf.Len()) || size != Size(w.Blobs()) {
		t.Fatalf("Finalize size %d, buffer %d, Size() %d", size, buf.Len(), Size(w.Blobs()))
	}
	return buf.Bytes(), w.Blobs()
}

func TestRoundTrip(t *testing.T) {
	key := crypto.NewRandomKey()
	for _, n := range []int{1, 2, 14, 15, 16, 100, 2000} {
		for _, compressed := range []bool{false, true} {
			data, want := buildPack(t, key, n, compressed)
			got, err := ReadHeader(bytes.NewReader(data), int64(len(data)), key)
			if err != nil {
				t.Fatalf("n=%d: %v", n, err)
			}
			if len(got) != len(want) {
				t.Fatalf("n=%d: %d blobs, want %d", n, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("n=%d blob %d: %+v, want %+v", n, i, got[i], want[i])
				}
				box := data[got[i].Offset : got[i].Offset+got[i].Length]
				pt, err := key.Open(nil, box)
				if err != nil || blob.Hash(pt) != got[i].ID {
					t.Fatalf("blob %d does not open to its ID: %v", i, err)
				}
			}
		}
	}
}

// The spec's size example: two compressed data blobs of 42 and 53 bytes make
// an 82-byte header plaintext, a 114-byte encrypted header and a 213-byte pack.
func TestSizeArithmetic(t *testing.T) {
	blobs := []Blob{{Length: 42, UncompressedLength: 1}, {Length: 53, UncompressedLength: 12}}
	if got := Size(blobs); got != 213 {
		t.Fatalf("Size = %d, want 213", got)
	}
	if got := HeaderSize(blobs); got != 114+4 {
		t.Fatalf("HeaderSize = %d", got)
	}
}

func TestDamage(t *testing.T) {
	key := crypto.NewRandomKey()
	data, _ := buildPack(t, key, 20, true)
	cases := map[string][]byte{
		"empty":          {},
		"tiny":           data[:10],
		"truncated":      data[:len(data)-7],
		"zero length":    append(append([]byte{}, data[:len(data)-4]...), 0, 0, 0, 0),
		"huge length":    append(append([]byte{}, data[:len(data)-4]...), 0xff, 0xff, 0xff, 0x7f),
		"flipped header": flip(data, len(data)-20),
	}
	for name, d := range cases {
		if _, err := ReadHeader(bytes.NewReader(d), int64(len(d)), key); !errors.Is(err, ErrInvalidPack) && err == nil {
			t.Errorf("%s: accepted", name)
		} else if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A flipped byte in a blob does not affect the header.
	if _, err := ReadHeader(bytes.NewReader(flip(data, 3)), int64(len(data)), key); err != nil {
		t.Errorf("flipped blob byte broke the header: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}

func TestParseHeaderBounds(t *testing.T) {
	id := blob.Hash([]byte("x"))
	entry := func(t byte, length uint32) []byte {
		b := []byte{t}
		b = binary.LittleEndian.AppendUint32(b, length)
		if t >= 2 {
			b = binary.LittleEndian.AppendUint32(b, 7)
		}
		return append(b, id[:]...)
	}
	if _, err := ParseHeader(entry(0, 100), 99); err == nil {
		t.Error("blob past the data accepted")
	}
	if _, err := ParseHeader(entry(0, 10), 99); err == nil {
		t.Error("blob shorter than overhead accepted")
	}
	if _, err := ParseHeader(entry(9, 40), 99); err == nil {
		t.Error("type 9 accepted")
	}
	if _, err := ParseHeader(entry(2, 40)[:20], 99); err == nil {
		t.Error("truncated entry accepted")
	}
	if b, err := ParseHeader(append(entry(2, 40), entry(1, 50)...), 90); err != nil || len(b) != 2 || b[1].Offset != 40 || b[0].UncompressedLength != 7 {
		t.Errorf("valid header: %+v %v", b, err)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{}, int64(0))
	plain, _ := EncodeHeader([]Blob{{Handle: blob.Handle{Type: blob.DataBlob}, Length: 40, UncompressedLength: 3}, {Handle: blob.Handle{Type: blob.TreeBlob}, Length: 33}})
	f.Add(plain, int64(73))
	f.Fuzz(func(t *testing.T, plain []byte, dataSize int64) {
		blobs, err := ParseHeader(plain, dataSize)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to the same bytes.
		again, err := EncodeHeader(blobs)
		if err != nil || !bytes.Equal(again, plain) {
			t.Fatalf("re-encode differs: %v", err)
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	key := crypto.NewRandomKey()
	data, _ := buildPack(f, key, 3, true)
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadHeader(bytes.NewReader(data), int64(len(data)), key)
	})
}

func BenchmarkReadHeader(b *testing.B) {
	key := crypto.NewRandomKey()
	data, _ := buildPack(b, key, 1000, true)
	for b.Loop() {
		if _, err := ReadHeader(bytes.NewReader(data), int64(len(data)), key); err != nil {
			b.Fatal(err)
		}
	}
}
