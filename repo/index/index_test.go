package index

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/pack"
)

func testID(i int) blob.ID {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return blob.Hash(b[:])
}

func TestIndexAddLookup(t *testing.T) {
	idx := New()
	const n = 50000
	for p := 0; p < n/100; p++ {
		var blobs []pack.Blob
		for j := 0; j < 100; j++ {
			i := p*100 + j
			typ := blob.DataBlob
			if i%10 == 0 {
				typ = blob.TreeBlob
			}
			blobs = append(blobs, pack.Blob{Handle: blob.Handle{ID: testID(i), Type: typ}, Offset: uint32(j * 100), Length: 100, UncompressedLength: uint32(i % 3)})
		}
		idx.AddPack(testID(-p-1), blobs)
	}
	if idx.Len(blob.DataBlob) != n*9/10 || idx.Len(blob.TreeBlob) != n/10 {
		t.Fatalf("Len data %d tree %d", idx.Len(blob.DataBlob), idx.Len(blob.TreeBlob))
	}
	for i := 0; i < n; i++ {
		typ, other := blob.DataBlob, blob.TreeBlob
		if i%10 == 0 {
			typ, other = other, typ
		}
		locs := idx.Lookup(blob.Handle{ID: testID(i), Type: typ})
		if len(locs) != 1 || locs[0].Pack != testID(-(i/100)-1) || locs[0].Offset != uint32(i%100*100) || locs[0].UncompressedLength != uint32(i%3) {
			t.Fatalf("blob %d: %+v", i, locs)
		}
		// The index keys on type and ID: the same ID as the other type is unknown.
		if idx.Has(blob.Handle{ID: testID(i), Type: other}) {
			t.Fatalf("blob %d found with the wrong type", i)
		}
	}
	if idx.Has(blob.Handle{ID: testID(n + 1), Type: blob.DataBlob}) {
		t.Fatal("unknown blob found")
	}
	if len(idx.Packs()) != n/100 {
		t.Fatalf("%d packs", len(idx.Packs()))
	}
	count := 0
	idx.Each(func(Location) bool { count++; return true })
	if count != n {
		t.Fatalf("Each visited %d", count)
	}
}

func TestDuplicates(t *testing.T) {
	idx := New()
	h := blob.Handle{ID: testID(1), Type: blob.DataBlob}
	b := []pack.Blob{{Handle: h, Offset: 0, Length: 40}}
	idx.AddPack(testID(100), b)
	idx.AddPack(testID(100), b) // same location again: no new copy
	idx.AddPack(testID(200), b) // a second pack: a second copy
	if locs := idx.Lookup(h); len(locs) != 2 {
		t.Fatalf("%d locations", len(locs))
	}
	if idx.Len(blob.DataBlob) != 1 {
		t.Fatalf("distinct %d", idx.Len(blob.DataBlob))
	}
	if l, ok := idx.PlaintextLength(h); !ok || l != 8 {
		t.Fatalf("plaintext length %d %v", l, ok)
	}
	f := &File{Packs: []PackEntry{NewPackEntry(testID(300), b)}}
	idx.AddFile(testID(7), f)
	idx.AddFile(testID(8), f)
	if locs := idx.Lookup(h); len(locs) != 3 {
		t.Fatalf("after files: %d locations", len(locs))
	}
	if files := idx.IndexFilesOf(testID(300)); len(files) != 2 {
		t.Fatalf("index files of pack: %v", files)
	}
}

// The golden v2 index from the format spec, byte for byte.
const goldenIndex = `{"packs":[{"id":"449936cb098a31e461597070724c40b09ae68e73f1fbfa05ba0355e6657c33ba","blobs":[{"id":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","type":"data","offset":0,"length":42,"uncompressed_length":1},{"id":"a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447","type":"data","offset":42,"length":53,"uncompressed_length":12}]}]}` + "\n"

func TestFileRoundTrip(t *testing.T) {
	f, legacy, err := Decode([]byte(goldenIndex))
	if err != nil || legacy {
		t.Fatal(err, legacy)
	}
	out, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != goldenIndex {
		t.Fatalf("re-encoded\n%s\nwant\n%s", out, goldenIndex)
	}
	if !f.HasCompressed() || f.BlobCount() != 2 {
		t.Fatal("HasCompressed/BlobCount")
	}
	empty, _ := (&File{}).Encode()
	if string(empty) != "{\"packs\":[]}\n" {
		t.Fatalf("empty index %q", empty)
	}
}

func TestDecodeLegacyAndSupersedes(t *testing.T) {
	legacyDoc := `[{"id":"449936cb098a31e461597070724c40b09ae68e73f1fbfa05ba0355e6657c33ba","blobs":[{"id":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","type":"tree","offset":0,"length":42}]}]`
	f, legacy, err := Decode([]byte(legacyDoc))
	if err != nil || !legacy || len(f.Packs) != 1 || f.Packs[0].Blobs[0].Type != blob.TreeBlob {
		t.Fatalf("legacy: %+v %v %v", f, legacy, err)
	}
	sup := strings.Replace(goldenIndex, `{"packs"`, `{"supersedes":["449936cb098a31e461597070724c40b09ae68e73f1fbfa05ba0355e6657c33ba"],"packs"`, 1)
	f, _, err = Decode([]byte(sup))
	if err != nil || len(f.Supersedes) != 1 {
		t.Fatalf("supersedes: %v", err)
	}
	if out, _ := f.Encode(); bytes.Contains(out, []byte("supersedes")) {
		t.Fatal("Encode wrote supersedes")
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, doc := range []string{
		``, `{`, `{"packs":[{"id":"zz"}]}`,
		strings.Replace(goldenIndex, `"data"`, `"Data"`, 1),
		strings.Replace(goldenIndex, `"length":42`, `"length":4`, 1),
		strings.Replace(goldenIndex, `"offset":42`, `"offset":4294967290`, 1),
		strings.Replace(goldenIndex, `"length":42`, `"length":-1`, 1),
	} {
		if _, _, err := Decode([]byte(doc)); err == nil {
			t.Errorf("accepted %.60q", doc)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(goldenIndex))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, _, err := Decode(data)
		if err != nil {
			return
		}
		out, err := file.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := Decode(out)
		if err != nil || len(again.Packs) != len(file.Packs) {
			t.Fatalf("re-decode: %v", err)
		}
		idx := New()
		for i := range file.Packs {
			idx.AddPack(file.Packs[i].ID, file.Packs[i].PackBlobs())
		}
	})
}

func BenchmarkAdd1M(b *testing.B) {
	blobs := make([]pack.Blob, 1000)
	for b.Loop() {
		idx := New()
		for p := 0; p < 1000; p++ {
			for j := range blobs {
				blobs[j] = pack.Blob{Handle: blob.Handle{ID: testID(p*1000 + j), Type: blob.DataBlob}, Length: 100}
			}
			idx.AddPack(testID(-p-1), blobs)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	idx := New()
	var blobs []pack.Blob
	for j := 0; j < 100000; j++ {
		blobs = append(blobs, pack.Blob{Handle: blob.Handle{ID: testID(j), Type: blob.DataBlob}, Length: 100})
	}
	idx.AddPack(testID(-1), blobs)
	i := 0
	for b.Loop() {
		if !idx.Has(blob.Handle{ID: testID(i % 100000), Type: blob.DataBlob}) {
			b.Fatal(fmt.Sprint("missing ", i))
		}
		i++
	}
}

// A BlobWriter adds a pack (AddPack) and then its index file (AddFile): the
// blobs are listed once, so prune counts each stored copy once.
func TestAddPackThenFile(t *testing.T) {
	idx := New()
	packID := testID(-1)
	blobs := []pack.Blob{
		{Handle: blob.Handle{ID: testID(1), Type: blob.DataBlob}, Offset: 0, Length: 100},
		{Handle: blob.Handle{ID: testID(2), Type: blob.TreeBlob}, Offset: 100, Length: 50},
	}
	idx.AddPack(packID, blobs)
	idx.AddFile(testID(-2), &File{Packs: []PackEntry{NewPackEntry(packID, blobs)}})
	n := 0
	idx.Each(func(Location) bool { n++; return true })
	if n != 2 {
		t.Errorf("Each yields %d locations, want 2", n)
	}
	if locs := idx.Lookup(blobs[0].Handle); len(locs) != 1 {
		t.Errorf("Lookup: %d locations, want 1", len(locs))
	}
	if got := idx.IndexFilesOf(packID); len(got) != 1 || got[0] != testID(-2) {
		t.Errorf("IndexFilesOf: %v", got)
	}
}
