package index

import (
	"bytes"
	"slices"
	"testing"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/pack"
)

// slotsIndex has 40 packs of 1000 data blobs (so DropPacks frees whole
// blocks) plus one tree blob each, and blob 0 stored a second time in the
// last pack.
func slotsIndex(t *testing.T) (*Index, []blob.ID) {
	t.Helper()
	idx := New()
	var packs []blob.ID
	for p := range 40 {
		var blobs []pack.Blob
		for j := range 1000 {
			blobs = append(blobs, pack.Blob{Handle: blob.Handle{ID: testID(p*1000 + j), Type: blob.DataBlob}, Offset: uint32(j * 100), Length: 100})
		}
		blobs = append(blobs, pack.Blob{Handle: blob.Handle{ID: testID(-p - 1000), Type: blob.TreeBlob}, Offset: 100000, Length: 50})
		if p == 39 {
			blobs = append(blobs, pack.Blob{Handle: blob.Handle{ID: testID(0), Type: blob.DataBlob}, Offset: 100050, Length: 100})
		}
		id := testID(-p - 1)
		packs = append(packs, id)
		idx.AddPack(id, blobs)
	}
	return idx, packs
}

// Slots number copies; Find and every copy's First name the copy Lookup
// returns first, At reads a slot back.
func TestSlots(t *testing.T) {
	idx, packs := slotsIndex(t)
	if n := idx.Slots(blob.DataBlob); n != 40001 {
		t.Fatalf("data slots %d", n)
	}
	if n := idx.Slots(blob.TreeBlob); n != 40 {
		t.Fatalf("tree slots %d", n)
	}
	h0 := blob.Handle{ID: testID(0), Type: blob.DataBlob}
	first, ok := idx.Find(h0)
	loc, _ := idx.At(blob.DataBlob, first)
	if !ok || loc.Pack != idx.Lookup(h0)[0].Pack || loc.Pack != packs[39] {
		t.Fatalf("Find %d %v: %+v", first, ok, loc)
	}
	copies := 0
	idx.EachEntry(func(e Entry) bool {
		at, ok := idx.At(e.Type, e.Slot)
		if !ok || at != e.Location {
			t.Fatalf("slot %d: At %+v, entry %+v", e.Slot, at, e.Location)
		}
		if f, _ := idx.Find(e.Handle); f != e.First {
			t.Fatalf("%v: First %d, Find %d", e.Handle, e.First, f)
		}
		if e.Handle == h0 {
			copies++
		}
		return true
	})
	if copies != 2 {
		t.Fatalf("%d copies of blob 0", copies)
	}
	if _, ok := idx.Find(blob.Handle{ID: testID(-1), Type: blob.DataBlob}); ok {
		t.Fatal("found an unknown blob")
	}
	if _, ok := idx.At(blob.DataBlob, 40001); ok {
		t.Fatal("At past the end")
	}
}

// DropPacks removes a pack's copies from lookups, iteration and the pack
// list, keeps the other packs' slots, frees whole blocks, and a pack can
// come back.
func TestDropPacks(t *testing.T) {
	idx, packs := slotsIndex(t)
	idx.AddFile(testID(99), &File{Packs: []PackEntry{{ID: packs[0]}}})
	h0 := blob.Handle{ID: testID(0), Type: blob.DataBlob}
	h5 := blob.Handle{ID: testID(5), Type: blob.DataBlob}
	keep, _ := idx.Find(blob.Handle{ID: testID(35000), Type: blob.DataBlob})
	idx.DropPacks(packs[:30])
	if idx.Has(h5) || idx.HasPack(packs[0]) || len(idx.IndexFilesOf(packs[0])) != 0 {
		t.Fatal("a dropped pack's blob or pack is still known")
	}
	if locs := idx.Lookup(h0); len(locs) != 1 || locs[0].Pack != packs[39] {
		t.Fatalf("blob 0: %+v", locs)
	}
	if got := idx.Packs(); !slices.Equal(got, packs[30:]) {
		t.Fatalf("packs %d", len(got))
	}
	if n := idx.Len(blob.DataBlob); n != 10001 { // blob 0 has its other copy in pack 39
		t.Fatalf("Len %d", n)
	}
	if idx.Len(blob.TreeBlob) != 10 {
		t.Fatalf("tree Len %d", idx.Len(blob.TreeBlob))
	}
	if s, _ := idx.Find(blob.Handle{ID: testID(35000), Type: blob.DataBlob}); s != keep {
		t.Fatalf("slot moved from %d to %d", keep, s)
	}
	n := 0
	idx.EachEntry(func(e Entry) bool {
		if slices.Contains(packs[:30], e.Pack) {
			t.Fatalf("dropped copy %+v", e)
		}
		n++
		return true
	})
	if n != 10000+10+1 {
		t.Fatalf("%d copies left", n)
	}
	freed := 0
	for _, b := range idx.tables[blob.DataBlob].blocks {
		if b == nil {
			freed++
		}
	}
	if freed < 6 { // 30000 of the first 30000 slots, 4096 per block
		t.Fatalf("%d blocks freed", freed)
	}
	// New copies get new slots and grow past the freed ones.
	idx.AddPack(packs[0], []pack.Blob{{Handle: h5, Offset: 0, Length: 100}})
	if s, ok := idx.Find(h5); !ok || s != 40001 || !idx.HasPack(packs[0]) {
		t.Fatalf("re-added blob in slot %d %v", s, ok)
	}
	for i := range 20000 { // forces the buckets to grow over dead slots
		idx.AddPack(testID(-5000-i), []pack.Blob{{Handle: blob.Handle{ID: testID(100000 + i), Type: blob.DataBlob}, Length: 100}})
	}
	if !idx.Has(h5) || !idx.Has(blob.Handle{ID: testID(35000), Type: blob.DataBlob}) || idx.Has(blob.Handle{ID: testID(6), Type: blob.DataBlob}) {
		t.Fatal("lookups wrong after growing")
	}
}

// GroupByPack lists every kept pack, sorted by ID, with its blobs sorted by
// offset: what an index file lists.
func TestGroupByPack(t *testing.T) {
	idx, packs := slotsIndex(t)
	idx.DropPacks(packs[:2])
	g := idx.GroupByPack(func(id blob.ID) bool { return id == packs[2] })
	if g.Len() != 37 {
		t.Fatalf("%d packs", g.Len())
	}
	for i := range g.Len() {
		a, b := g.ID(max(i-1, 0)), g.ID(i)
		if i > 0 && bytes.Compare(a[:], b[:]) >= 0 {
			t.Fatal("packs not sorted")
		}
		p := g.Entry(i)
		if p.ID != g.ID(i) || len(p.Blobs) != g.Count(i) {
			t.Fatalf("pack %d: %d blobs, count %d", i, len(p.Blobs), g.Count(i))
		}
		want := 1001
		if p.ID == packs[39] {
			want = 1002
		}
		if len(p.Blobs) != want || p.Blobs[1000].Type != blob.TreeBlob {
			t.Fatalf("pack %s: %d blobs", p.ID.Str(), len(p.Blobs))
		}
		for j := 1; j < len(p.Blobs); j++ {
			if p.Blobs[j-1].Offset >= p.Blobs[j].Offset {
				t.Fatal("blobs not sorted by offset")
			}
		}
	}
}
