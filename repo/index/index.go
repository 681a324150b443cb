package index

import (
	"encoding/binary"
	"sync"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/pack"
)

// Location is where one copy of a blob is stored.
type Location struct {
	Pack blob.ID
	pack.Blob
}

// Index is the in-memory union of index files. It is safe for concurrent
// use; lookups take a read lock.
type Index struct {
	mu     sync.RWMutex
	tables [3]table // indexed by blob.Type; slot 0 unused
	packs  []blob.ID
	packNo map[blob.ID]uint32
	// files maps a pack to the index files that list it (usually one).
	files map[blob.ID][]blob.ID
}

// New returns an empty index.
func New() *Index {
	return &Index{packNo: make(map[blob.ID]uint32), files: make(map[blob.ID][]blob.ID)}
}

func (idx *Index) packNumber(id blob.ID) uint32 {
	if n, ok := idx.packNo[id]; ok {
		return n
	}
	n := uint32(len(idx.packs))
	idx.packs = append(idx.packs, id)
	idx.packNo[id] = n
	return n
}

// AddPack records the blobs of a pack. Adding a pack that is already known
// adds only blobs whose exact location is new, so loading the same entry from
// two index files keeps one copy.
func (idx *Index) AddPack(packID blob.ID, blobs []pack.Blob) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	idx.addPackLocked(packID, blobs)
}

func (idx *Index) addPackLocked(packID blob.ID, blobs []pack.Blob) {
	_, known := idx.packNo[packID]
	n := idx.packNumber(packID)
	for _, b := range blobs {
		if b.Type != blob.DataBlob && b.Type != blob.TreeBlob {
			continue
		}
		t := &idx.tables[b.Type]
		if known && t.hasLocation(b.ID, n, b.Offset) {
			continue
		}
		t.add(entry{id: b.ID, pack: n, offset: b.Offset, length: b.Length, ulength: b.UncompressedLength})
	}
}

// AddFile records every pack of an index file and remembers that file fileID
// lists them.
func (idx *Index) AddFile(fileID blob.ID, f *File) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	for i := range f.Packs {
		p := &f.Packs[i]
		// A pack is known already when another index file lists it, or
		// when a BlobWriter added it (AddPack) before writing its index
		// file: then only new locations are added.
		_, known := idx.packNo[p.ID]
		n := idx.packNumber(p.ID)
		idx.files[p.ID] = appendUnique(idx.files[p.ID], fileID)
		for _, b := range p.Blobs {
			if b.Type != blob.DataBlob && b.Type != blob.TreeBlob {
				continue
			}
			t := &idx.tables[b.Type]
			if known && t.hasLocation(b.ID, n, b.Offset) {
				continue
			}
			t.add(entry{id: b.ID, pack: n, offset: b.Offset, length: b.Length, ulength: b.UncompressedLength})
		}
	}
}

func appendUnique(ids []blob.ID, id blob.ID) []blob.ID {
	for _, x := range ids {
		if x == id {
			return ids
		}
	}
	return append(ids, id)
}

// Has reports whether the blob is in the index.
func (idx *Index) Has(h blob.Handle) bool {
	if h.Type != blob.DataBlob && h.Type != blob.TreeBlob {
		return false
	}
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return idx.tables[h.Type].first(h.ID) >= 0
}

// Lookup returns every stored copy of the blob (none if unknown).
func (idx *Index) Lookup(h blob.Handle) []Location {
	if h.Type != blob.DataBlob && h.Type != blob.TreeBlob {
		return nil
	}
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	t := &idx.tables[h.Type]
	var out []Location
	for i := t.first(h.ID); i >= 0; i = t.nextSame(i, h.ID) {
		e := t.at(i)
		out = append(out, Location{Pack: idx.packs[e.pack], Blob: pack.Blob{Handle: h, Offset: e.offset, Length: e.length, UncompressedLength: e.ulength}})
	}
	return out
}

// PlaintextLength returns the blob's plaintext length, if the blob is known.
func (idx *Index) PlaintextLength(h blob.Handle) (uint32, bool) {
	if h.Type != blob.DataBlob && h.Type != blob.TreeBlob {
		return 0, false
	}
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	t := &idx.tables[h.Type]
	i := t.first(h.ID)
	if i < 0 {
		return 0, false
	}
	e := t.at(i)
	if e.ulength != 0 {
		return e.ulength, true
	}
	return e.length - 32, true
}

// Len returns the number of distinct blobs of type t.
func (idx *Index) Len(t blob.Type) int {
	if t != blob.DataBlob && t != blob.TreeBlob {
		return 0
	}
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return idx.tables[t].distinct
}

// Packs returns the IDs of all packs in the index.
func (idx *Index) Packs() []blob.ID {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return append([]blob.ID(nil), idx.packs...)
}

// HasPack reports whether any index entry refers to pack id.
func (idx *Index) HasPack(id blob.ID) bool {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	_, ok := idx.packNo[id]
	return ok
}

// IndexFilesOf returns the index files (added with AddFile) that list pack id.
func (idx *Index) IndexFilesOf(id blob.ID) []blob.ID {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return append([]blob.ID(nil), idx.files[id]...)
}

// Each calls fn for every stored blob location, data blobs first. fn must
// not call back into the index (it holds the read lock).
func (idx *Index) Each(fn func(Location) bool) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	for _, typ := range []blob.Type{blob.DataBlob, blob.TreeBlob} {
		t := &idx.tables[typ]
		for i := 0; i < t.count; i++ {
			e := t.at(int32(i))
			if !fn(Location{Pack: idx.packs[e.pack], Blob: pack.Blob{Handle: blob.Handle{ID: e.id, Type: typ}, Offset: e.offset, Length: e.length, UncompressedLength: e.ulength}}) {
				return
			}
		}
	}
}

// entry is one stored copy of a blob: 52 bytes.
type entry struct {
	id      blob.ID
	pack    uint32
	offset  uint32
	length  uint32
	ulength uint32
	next    int32 // next entry in the same bucket, -1 at the end
}

const blockBits = 12 // 4096 entries per block: growth never copies entries

// table is a chained hash table over entries stored in fixed-size blocks.
type table struct {
	blocks   [][]entry
	buckets  []int32 // head entry per bucket, -1 if empty
	count    int     // entries (copies)
	distinct int     // distinct IDs
}

func (t *table) at(i int32) *entry {
	return &t.blocks[i>>blockBits][i&(1<<blockBits-1)]
}

func bucketOf(id blob.ID, n int) int {
	// IDs are SHA-256 digests: any 8 bytes are uniformly distributed.
	return int(binary.LittleEndian.Uint64(id[:8]) & uint64(n-1))
}

func (t *table) first(id blob.ID) int32 {
	if len(t.buckets) == 0 {
		return -1
	}
	for i := t.buckets[bucketOf(id, len(t.buckets))]; i >= 0; {
		e := t.at(i)
		if e.id == id {
			return i
		}
		i = e.next
	}
	return -1
}

func (t *table) nextSame(i int32, id blob.ID) int32 {
	for i = t.at(i).next; i >= 0; {
		e := t.at(i)
		if e.id == id {
			return i
		}
		i = e.next
	}
	return -1
}

func (t *table) hasLocation(id blob.ID, packNo, offset uint32) bool {
	for i := t.first(id); i >= 0; i = t.nextSame(i, id) {
		e := t.at(i)
		if e.pack == packNo && e.offset == offset {
			return true
		}
	}
	return false
}

func (t *table) add(e entry) {
	if t.count >= len(t.buckets) {
		t.grow()
	}
	if t.first(e.id) < 0 {
		t.distinct++
	}
	i := int32(t.count)
	if int(i)>>blockBits >= len(t.blocks) {
		t.blocks = append(t.blocks, make([]entry, 1<<blockBits))
	}
	b := bucketOf(e.id, len(t.buckets))
	e.next = t.buckets[b]
	*t.at(i) = e
	t.buckets[b] = i
	t.count++
}

// grow doubles the bucket array and relinks every entry.
func (t *table) grow() {
	n := 2 * len(t.buckets)
	if n < 1024 {
		n = 1024
	}
	t.buckets = make([]int32, n)
	for i := range t.buckets {
		t.buckets[i] = -1
	}
	// Relink oldest first so chains keep the newest copy at the head, as add
	// does.
	for i := 0; i < t.count; i++ {
		e := t.at(int32(i))
		b := bucketOf(e.id, n)
		e.next = t.buckets[b]
		t.buckets[b] = int32(i)
	}
}
