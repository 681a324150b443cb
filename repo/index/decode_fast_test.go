package index

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/pack"
)

// fastCases are documents the fast scanner must read exactly as
// encoding/json does, or hand over to it.
var fastCases = []string{
	goldenIndex,
	`[]`, `{}`, `{"packs":[]}`, `{"packs":null}`, ` {"packs":[]} ` + "\n",
	`[{"id":"` + strings.Repeat("ab", 32) + `","blobs":[]}]`,
	`{"supersedes":["` + strings.Repeat("01", 32) + `"],"packs":[{"blobs":[{"length":40,"offset":7,"type":"tree","id":"` + strings.Repeat("CD", 32) + `"}],"id":"` + strings.Repeat("ef", 32) + `"}]}`,
	`{"supersedes":[],"packs":[]}`,
	`{"packs":[{"id":"` + strings.Repeat("ab", 32) + `","blobs":[{"id":"` + strings.Repeat("12", 32) + `","type":"data","offset":0,"length":4294967295}]}]}`,
	// Handed to encoding/json: other spellings, nulls, numbers and
	// escapes it treats in its own way, trailing data, damage.
	`{"Packs":[]}`, `{"packs":[],"extra":1}`, `{"packs":[{"id":null,"blobs":null}]}`,
	`{"packs":[{"id":"` + strings.Repeat("ab", 32) + `","blobs":[{"id":"` + strings.Repeat("12", 32) + `","type":"data","offset":1e2,"length":40}]}]}`,
	`{"packs":[{"id":"` + strings.Repeat("ab", 32) + `","blobs":[{"id":"` + strings.Repeat("12", 32) + `","type":"data","offset":01,"length":40}]}]}`,
	`{"packs":[{"id":"` + strings.Repeat("ab", 32) + `","blobs":[{"id":"` + strings.Repeat("12", 32) + `","type":"data","offset":4294967296,"length":40}]}]}`,
	`{"packs":[{"id":"` + strings.Repeat("ab", 32) + `","blobs":[{"id":"` + strings.Repeat("12", 32) + `","type":"d\u0061ta","offset":0,"length":40}]}]}`,
	`{"packs":[]} x`, `{"packs":[]`, `{"packs":[{"id":"zz"}]}`, `{"packs":[],}`, `[{"id":"` + strings.Repeat("ab", 32) + `"},]`,
	`{"packs":[{"id":"` + strings.Repeat("ab", 32) + `","blobs":[]}],"packs":[]}`,
}

// checkFast fails when the fast scanner accepts a document and reads it
// differently from encoding/json.
func checkFast(t *testing.T, doc []byte) {
	t.Helper()
	fast, ok := decodeFast(doc)
	if !ok {
		return
	}
	ref, _, err := decodeReference(doc)
	if err != nil {
		t.Fatalf("fast path accepted %.80q, encoding/json refuses it: %v", doc, err)
	}
	if !reflect.DeepEqual(fast, ref) {
		t.Fatalf("%.80q: fast path read\n%+v\nencoding/json\n%+v", doc, fast, ref)
	}
}

func TestDecodeFastMatchesReference(t *testing.T) {
	accepted := 0
	for _, doc := range fastCases {
		checkFast(t, []byte(doc))
		if _, ok := decodeFast([]byte(doc)); ok {
			accepted++
		}
	}
	// The formats restic and cairn write must take the fast path, or it
	// is no faster.
	f := bigIndex(10, 100)
	buf, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	checkFast(t, buf)
	if _, ok := decodeFast(buf); !ok || accepted < 8 {
		t.Fatalf("fast path refused an encoded index or the written forms (%d accepted)", accepted)
	}
	got, _, err := Decode(buf)
	if err != nil || !reflect.DeepEqual(got.Packs, f.Packs) {
		t.Fatalf("round trip through the fast path: %v", err)
	}
}

func FuzzDecodeFast(f *testing.F) {
	for _, doc := range fastCases {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFast(t, data)
	})
}

func bigIndex(packs, blobsPerPack int) *File {
	f := &File{}
	n := 0
	for p := 0; p < packs; p++ {
		var blobs []pack.Blob
		for j := 0; j < blobsPerPack; j++ {
			n++
			blobs = append(blobs, pack.Blob{Handle: blob.Handle{ID: testID(n), Type: blob.DataBlob}, Offset: uint32(j * 500), Length: 500, UncompressedLength: uint32(700 + j)})
		}
		f.Packs = append(f.Packs, NewPackEntry(testID(-p-1), blobs))
	}
	return f
}

// BenchmarkDecode reads an index file of 50,000 blobs (restic's limit per
// file) with the fast path and with encoding/json.
func BenchmarkDecode(b *testing.B) {
	buf, err := bigIndex(500, 100).Encode()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func([]byte) error
	}{
		{"fast", func(d []byte) error {
			if _, ok := decodeFast(d); !ok {
				return fmt.Errorf("fast path refused")
			}
			return nil
		}},
		{"encoding-json", func(d []byte) error { _, _, err := decodeReference(d); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if err := c.fn(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The fast encoder writes exactly what encoding/json writes, and leaves
// an entry of an invalid type to it (which fails).
func TestEncodeFastMatchesJSON(t *testing.T) {
	f := File{Packs: []PackEntry{
		{ID: testID(1), Blobs: []BlobEntry{
			{ID: testID(2), Type: blob.DataBlob, Offset: 0, Length: 4294967295},
			{ID: testID(3), Type: blob.TreeBlob, Offset: 12345, Length: 77, UncompressedLength: 1 << 31},
		}},
		{ID: testID(4)},
		{ID: testID(5), Blobs: []BlobEntry{}},
	}}
	for _, f := range []File{f, {}, {Packs: []PackEntry{}}} {
		got, err := f.Encode()
		if err != nil {
			t.Fatal(err)
		}
		out := File{Packs: f.Packs}
		if out.Packs == nil {
			out.Packs = []PackEntry{}
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("fast encoding\n%s\nencoding/json\n%s", got, want.Bytes())
		}
	}
	bad := File{Packs: []PackEntry{{ID: testID(1), Blobs: []BlobEntry{{ID: testID(2), Type: 7, Length: 40}}}}}
	if _, err := bad.Encode(); err == nil {
		t.Fatal("an entry of blob type 7 was encoded")
	}
}
