package index

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"unsafe"

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
	// spans holds, per pack number, the lowest and highest slot of its
	// entries in each table, so that DropPacks need not scan everything
	// (a pack's entries are usually added together, hence adjacent).
	spans []packSpan
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
	idx.spans = append(idx.spans, packSpan{lo: [3]int32{-1, -1, -1}, hi: [3]int32{-1, -1, -1}})
	idx.packNo[id] = n
	return n
}

// packSpan is the slot range [lo, hi] per table that holds a pack's entries
// (-1 when it has none of that type).
type packSpan struct{ lo, hi [3]int32 }

// addEntry adds an entry to the table of typ and widens its pack's span.
func (idx *Index) addEntry(typ blob.Type, e entry) {
	slot := idx.tables[typ].add(e)
	sp := &idx.spans[e.pack]
	if sp.lo[typ] < 0 {
		sp.lo[typ] = slot
	}
	sp.hi[typ] = slot
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
		idx.addEntry(b.Type, entry{id: b.ID, pack: n, offset: b.Offset, length: b.Length, ulength: b.UncompressedLength})
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
			idx.addEntry(b.Type, entry{id: b.ID, pack: n, offset: b.Offset, length: b.Length, ulength: b.UncompressedLength})
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
	out := make([]blob.ID, 0, len(idx.packNo))
	for n, id := range idx.packs {
		if !idx.dropped(uint32(n)) {
			out = append(out, id)
		}
	}
	return out
}

// dropped reports whether pack number n was removed by DropPacks (its number
// is never reused; the pack gets a new one if added again).
func (idx *Index) dropped(n uint32) bool {
	no, ok := idx.packNo[idx.packs[n]]
	return !ok || no != n
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
			e := t.live(int32(i))
			if e == nil {
				continue
			}
			if !fn(Location{Pack: idx.packs[e.pack], Blob: pack.Blob{Handle: blob.Handle{ID: e.id, Type: typ}, Offset: e.offset, Length: e.length, UncompressedLength: e.ulength}}) {
				return
			}
		}
	}
}

// MemoryUse estimates the bytes the index holds: its entry blocks (but
// those DropPacks freed), hash buckets and pack table.
func (idx *Index) MemoryUse() int64 {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	var n int64
	for i := range idx.tables {
		t := &idx.tables[i]
		for _, b := range t.blocks {
			if b != nil {
				n += int64(len(b)) * int64(unsafe.Sizeof(entry{}))
			}
		}
		n += 4 * int64(len(t.buckets))
	}
	// A pack: its ID, number, span and map slots, and its files.
	return n + int64(len(idx.packs))*(2*blob.IDSize+64)
}

// Entry is one stored copy of a blob with its slot. Slots number the copies
// of each blob type from 0 to Slots(type)-1: a copy keeps its slot until it
// is dropped (DropPacks), slots are never reused, and copies added later get
// higher ones. Callers can thus keep per-copy state in a slice or a bitset
// instead of a map keyed by blob ID.
type Entry struct {
	Location
	// Slot is this copy's slot; First is the slot of the blob's copy that
	// Lookup returns first (the same for every copy of a blob, as long as
	// no copy is added or dropped).
	Slot, First int
}

// Slots returns the number of slots of type t: every slot of a copy of a
// blob of type t is below it.
func (idx *Index) Slots(t blob.Type) int {
	if t != blob.DataBlob && t != blob.TreeBlob {
		return 0
	}
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return idx.tables[t].count
}

// Find returns the slot of the blob's copy that Lookup returns first.
func (idx *Index) Find(h blob.Handle) (slot int, ok bool) {
	if h.Type != blob.DataBlob && h.Type != blob.TreeBlob {
		return 0, false
	}
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	i := idx.tables[h.Type].first(h.ID)
	return int(i), i >= 0
}

// At returns the copy in slot of type t, if the slot holds one.
func (idx *Index) At(t blob.Type, slot int) (Location, bool) {
	if t != blob.DataBlob && t != blob.TreeBlob {
		return Location{}, false
	}
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	tb := &idx.tables[t]
	if slot < 0 || slot >= tb.count {
		return Location{}, false
	}
	e := tb.live(int32(slot))
	if e == nil {
		return Location{}, false
	}
	return Location{Pack: idx.packs[e.pack], Blob: pack.Blob{Handle: blob.Handle{ID: e.id, Type: t}, Offset: e.offset, Length: e.length, UncompressedLength: e.ulength}}, true
}

// EachEntry calls fn for every stored copy, data blobs first, in slot order.
// fn must not call back into the index (it holds the read lock).
func (idx *Index) EachEntry(fn func(Entry) bool) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	for _, typ := range []blob.Type{blob.DataBlob, blob.TreeBlob} {
		t := &idx.tables[typ]
		for i := 0; i < t.count; i++ {
			e := t.live(int32(i))
			if e == nil {
				continue
			}
			loc := Location{Pack: idx.packs[e.pack], Blob: pack.Blob{Handle: blob.Handle{ID: e.id, Type: typ}, Offset: e.offset, Length: e.length, UncompressedLength: e.ulength}}
			if !fn(Entry{Location: loc, Slot: i, First: int(t.first(e.id))}) {
				return
			}
		}
	}
}

// EachEntryOf calls fn for every stored copy in pack id, in slot order.
// It scans only the slots between the pack's first and last copy, which
// are adjacent when the pack was added at once (from one index file or
// by AddPack). fn must not call back into the index.
func (idx *Index) EachEntryOf(id blob.ID, fn func(Entry) bool) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	n, ok := idx.packNo[id]
	if !ok {
		return
	}
	sp := idx.spans[n]
	for _, typ := range []blob.Type{blob.DataBlob, blob.TreeBlob} {
		if sp.lo[typ] < 0 {
			continue
		}
		t := &idx.tables[typ]
		for i := sp.lo[typ]; i <= sp.hi[typ]; i++ {
			e := t.live(i)
			if e == nil || e.pack != n {
				continue
			}
			loc := Location{Pack: id, Blob: pack.Blob{Handle: blob.Handle{ID: e.id, Type: typ}, Offset: e.offset, Length: e.length, UncompressedLength: e.ulength}}
			if !fn(Entry{Location: loc, Slot: int(i), First: int(t.first(e.id))}) {
				return
			}
		}
	}
}

// DropPacks removes every copy stored in the given packs from the index
// (in memory only: index files are untouched) and forgets the packs, freeing
// the memory of their entries where whole blocks of them go. Prune uses it
// for the packs it has copied, so that the index does not hold the old and
// the new copies at once.
func (idx *Index) DropPacks(ids []blob.ID) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	for _, id := range ids {
		n, ok := idx.packNo[id]
		if !ok {
			continue
		}
		sp := idx.spans[n]
		for typ := range idx.tables {
			if sp.lo[typ] < 0 {
				continue
			}
			t := &idx.tables[typ]
			for i := sp.lo[typ]; i <= sp.hi[typ]; i++ {
				if e := t.live(i); e != nil && e.pack == n {
					t.remove(i)
				}
			}
		}
		delete(idx.packNo, id)
		delete(idx.files, id)
		idx.spans[n] = packSpan{lo: [3]int32{-1, -1, -1}, hi: [3]int32{-1, -1, -1}}
	}
}

// SetIndexFiles replaces the record of which index files list each pack
// (IndexFilesOf) with filesOf's answer for every pack in the index; used
// after the index files were rewritten.
func (idx *Index) SetIndexFiles(filesOf func(pack blob.ID) []blob.ID) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	idx.files = make(map[blob.ID][]blob.ID, len(idx.packNo))
	for id := range idx.packNo {
		if f := filesOf(id); len(f) > 0 {
			idx.files[id] = slices.Clone(f)
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

// deadPack marks the slot of a removed entry.
const deadPack = math.MaxUint32

// table is a chained hash table over entries stored in fixed-size blocks.
// Removed entries stay in their slot, unlinked and marked dead; a block of
// nothing but dead entries is freed (nil).
type table struct {
	blocks   [][]entry
	dead     []int32 // dead entries per block
	buckets  []int32 // head entry per bucket, -1 if empty
	count    int     // slots (entries added, including dead ones)
	distinct int     // distinct IDs
}

// live returns the entry in slot i, or nil if it was removed.
func (t *table) live(i int32) *entry {
	b := t.blocks[i>>blockBits]
	if b == nil {
		return nil
	}
	e := &b[i&(1<<blockBits-1)]
	if e.pack == deadPack {
		return nil
	}
	return e
}

// remove unlinks the live entry in slot i from its chain, marks it dead and
// frees its block when every slot of the block is dead.
func (t *table) remove(i int32) {
	e := t.at(i)
	b := bucketOf(e.id, len(t.buckets))
	if t.buckets[b] == i {
		t.buckets[b] = e.next
	} else {
		for j := t.buckets[b]; j >= 0; {
			p := t.at(j)
			if p.next == i {
				p.next = e.next
				break
			}
			j = p.next
		}
	}
	if t.first(e.id) < 0 {
		t.distinct--
	}
	e.pack, e.next = deadPack, -1
	blk := int(i >> blockBits)
	t.dead[blk]++
	if t.dead[blk] == 1<<blockBits {
		t.blocks[blk] = nil
	}
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

// add stores e in the next slot and returns the slot.
func (t *table) add(e entry) int32 {
	if t.count >= len(t.buckets) {
		t.grow()
	}
	if t.first(e.id) < 0 {
		t.distinct++
	}
	i := int32(t.count)
	if int(i)>>blockBits >= len(t.blocks) {
		t.blocks = append(t.blocks, make([]entry, 1<<blockBits))
		t.dead = append(t.dead, 0)
	}
	b := bucketOf(e.id, len(t.buckets))
	e.next = t.buckets[b]
	*t.at(i) = e
	t.buckets[b] = i
	t.count++
	return i
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
		e := t.live(int32(i))
		if e == nil {
			continue
		}
		b := bucketOf(e.id, n)
		e.next = t.buckets[b]
		t.buckets[b] = int32(i)
	}
}

// PackGroups lists the copies of an index grouped by pack, packs sorted by
// ID, for writing index files without a second copy of the entries: it
// holds 4 bytes per copy. It is valid while the index does not change.
type PackGroups struct {
	idx   *Index
	packs []blob.ID
	start []int    // group i is refs[start[i]:start[i+1]]
	refs  []uint32 // slot<<1, | 1 for the tree table
}

// GroupByPack groups the copies of every pack for which skip (if not nil)
// returns false.
func (idx *Index) GroupByPack(skip func(pack blob.ID) bool) *PackGroups {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	counts := make([]int, len(idx.packs))
	for n := range idx.packs {
		if idx.dropped(uint32(n)) || (skip != nil && skip(idx.packs[n])) {
			counts[n] = -1
		}
	}
	eachLive := func(fn func(ref uint32, pack uint32)) {
		for bit, typ := range []blob.Type{blob.DataBlob, blob.TreeBlob} {
			t := &idx.tables[typ]
			for i := 0; i < t.count; i++ {
				if e := t.live(int32(i)); e != nil && counts[e.pack] >= 0 {
					fn(uint32(i)<<1|uint32(bit), e.pack)
				}
			}
		}
	}
	eachLive(func(_ uint32, pack uint32) { counts[pack]++ })
	var order []uint32
	for n, c := range counts {
		if c > 0 {
			order = append(order, uint32(n))
		}
	}
	slices.SortFunc(order, func(a, b uint32) int { return bytes.Compare(idx.packs[a][:], idx.packs[b][:]) })
	g := &PackGroups{idx: idx, packs: make([]blob.ID, len(order)), start: make([]int, len(order)+1)}
	// next[n] is where pack n's next ref goes.
	next := make([]int, len(idx.packs))
	total := 0
	for i, n := range order {
		g.packs[i] = idx.packs[n]
		g.start[i] = total
		next[n] = total
		total += counts[n]
	}
	g.start[len(order)] = total
	g.refs = make([]uint32, total)
	eachLive(func(ref uint32, pack uint32) {
		g.refs[next[pack]] = ref
		next[pack]++
	})
	return g
}

// Len returns the number of packs.
func (g *PackGroups) Len() int { return len(g.packs) }

// ID returns the ID of pack i.
func (g *PackGroups) ID(i int) blob.ID { return g.packs[i] }

// Count returns the number of copies in pack i.
func (g *PackGroups) Count(i int) int { return g.start[i+1] - g.start[i] }

// Entry returns pack i as an index file lists it: blobs sorted by offset,
// a location listed twice kept once.
func (g *PackGroups) Entry(i int) PackEntry {
	g.idx.mu.RLock()
	defer g.idx.mu.RUnlock()
	refs := g.refs[g.start[i]:g.start[i+1]]
	p := PackEntry{ID: g.packs[i], Blobs: make([]BlobEntry, 0, len(refs))}
	for _, ref := range refs {
		typ := blob.DataBlob
		if ref&1 != 0 {
			typ = blob.TreeBlob
		}
		e := g.idx.tables[typ].live(int32(ref >> 1))
		if e == nil {
			// Dropped since the grouping: the caller broke the contract.
			continue
		}
		p.Blobs = append(p.Blobs, BlobEntry{ID: e.id, Type: typ, Offset: e.offset, Length: e.length, UncompressedLength: e.ulength})
	}
	p.Blobs = SortBlobs(p.Blobs)
	return p
}

// SortBlobs sorts blob entries by offset and removes a location listed twice.
func SortBlobs(blobs []BlobEntry) []BlobEntry {
	slices.SortFunc(blobs, func(a, b BlobEntry) int { return int(int64(a.Offset) - int64(b.Offset)) })
	return slices.CompactFunc(blobs, func(a, b BlobEntry) bool { return a.Offset == b.Offset && a.ID == b.ID && a.Type == b.Type })
}
