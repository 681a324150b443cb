package chunk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"testing"
)

// specInput builds the 3 MiB input of the format spec's chunker test vector.
func specInput() []byte {
	var buf bytes.Buffer
	for i := uint64(0); i < 98304; i++ {
		h := sha256.New()
		h.Write([]byte("restic-spec"))
		var le [8]byte
		binary.LittleEndian.PutUint64(le[:], i)
		h.Write(le[:])
		buf.Write(h.Sum(nil))
	}
	return buf.Bytes()
}

func TestSpecVector(t *testing.T) {
	in := specInput()
	if sum := sha256.Sum256(in); hex.EncodeToString(sum[:]) != "51a9aae8af74f5a7bd23947cb99ad29199d708692075bfd6605729e10f0188e7" {
		t.Fatalf("input hash %x", sum)
	}
	pol, err := ParsePol("23e30c78ef838f")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		length int
		id     string
	}{
		{1476385, "33018b86091c075bb73b751a090b969ce9743e3d4937f64366964eaf838533c8"},
		{759737, "f6170a56829be4eba8ed3a4c830e411c730c91f7681cdfee75c12f2a0f9e8b18"},
		{909606, "b3000394d090bda39214d80f3a901231e298b2b62e9f1c617c6d07cc8a331a71"},
	}
	c := New(pol)
	for _, size := range []int64{-1, int64(len(in))} {
		if err := c.Reset(bytes.NewReader(in), size, nil); err != nil {
			t.Fatal(err)
		}
		var buf []byte
		for i := 0; ; i++ {
			data, err := c.Next(buf)
			if err == io.EOF {
				if i != len(want) {
					t.Fatalf("%d chunks, want %d", i, len(want))
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if i >= len(want) {
				t.Fatalf("extra chunk %d", i)
			}
			id := sha256.Sum256(data)
			if len(data) != want[i].length || hex.EncodeToString(id[:]) != want[i].id {
				t.Fatalf("chunk %d: %d bytes %x", i, len(data), id)
			}
			buf = data
		}
	}
}

func TestSmallFastPath(t *testing.T) {
	pol, _ := ParsePol("23e30c78ef838f")
	c := New(pol)
	for _, n := range []int{0, 1, 1000, MinSize - 1, MinSize, MinSize + 1} {
		in := specInput()[:n]
		// The declared size is the small one, even when the "file" grew.
		if err := c.Reset(bytes.NewReader(in), 10, make([]byte, 0, 16)); err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		for {
			d, err := c.Next(nil)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, append([]byte(nil), d...))
		}
		if n == 0 {
			if len(got) != 0 {
				t.Fatalf("empty input gave %d chunks", len(got))
			}
			continue
		}
		if !bytes.Equal(bytes.Join(got, nil), in) {
			t.Fatalf("n=%d: chunks don't reassemble", n)
		}
		if n <= MinSize && len(got) != 1 {
			t.Fatalf("n=%d: %d chunks", n, len(got))
		}
	}
}

func TestZeroChunk(t *testing.T) {
	pol, err := RandomPolynomial()
	if err != nil {
		t.Fatal(err)
	}
	c := New(pol)
	zeros := make([]byte, 3*MinSize+100)
	if err := c.Reset(bytes.NewReader(zeros), -1, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		d, err := c.Next(nil)
		if err != nil || len(d) != MinSize || sha256.Sum256(d) != ZeroChunkID {
			t.Fatalf("zero chunk %d: %d bytes, %v", i, len(d), err)
		}
	}
	if hex.EncodeToString(ZeroChunkID[:]) != "07854d2fef297a06ba81685e660c332de36d5d18d546927d30daad6d7fda1541" {
		t.Fatal("ZeroChunkID")
	}
}

func TestParsePol(t *testing.T) {
	for _, s := range []string{"", "zz", "1", "23e30c78ef838e", "ffffffffffffffff"} {
		if _, err := ParsePol(s); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
	p, err := RandomPolynomial()
	if err != nil {
		t.Fatal(err)
	}
	if q, err := ParsePol(FormatPol(p)); err != nil || q != p {
		t.Fatalf("round trip %v %v", q, err)
	}
}

func BenchmarkChunker(b *testing.B) {
	pol, _ := ParsePol("23e30c78ef838f")
	in := specInput()
	c := New(pol)
	buf := make([]byte, 0, MaxSize)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		_ = c.Reset(bytes.NewReader(in), -1, nil)
		for {
			d, err := c.Next(buf)
			if err != nil {
				break
			}
			buf = d
		}
	}
}
