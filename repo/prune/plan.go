package prune

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// Errors that stop a prune before it changes anything, as in restic.
var (
	// ErrIndexIncomplete: a blob that a snapshot uses is in no pack.
	ErrIndexIncomplete = errors.New("index is not complete")
	// ErrPacksMissing: the index lists a needed pack that does not exist.
	ErrPacksMissing = errors.New("packs from index missing in repo")
	// ErrSizeNotMatching: a needed pack's size differs from its index entry.
	ErrSizeNotMatching = errors.New("pack size does not match calculated size from index")
)

// Stats are restic's prune statistics: blob counts and sizes (stored sizes,
// as in the index) and pack counts.
type Stats struct {
	Blobs struct {
		Used, Duplicate, Unused, Remove, Repack, Repackrm uint64
	}
	Size struct {
		Used, Duplicate, Unused, Remove, Repack, Repackrm uint64
		// Unref is the size of packs no index lists.
		Unref uint64
		// Uncompressed is the size of packs with uncompressed blobs that
		// stay (v2 repositories only).
		Uncompressed uint64
	}
	Packs struct {
		Used, Unused, PartlyUsed, Unref, Keep, Repack, Remove uint64
	}
}

// Plan is what a prune will do. It is used once: Execute it or drop it.
type Plan struct {
	r     *repo.Repository
	opts  Options
	stats Stats

	unref  map[blob.ID]struct{} // packs no index lists: deleted first
	repack map[blob.ID]struct{} // packs whose used blobs are copied, then deleted
	remove map[blob.ID]struct{} // packs with no used blob
	ignore map[blob.ID]struct{} // indexed but missing and unneeded: dropped from the index
	// keep holds the used blobs (First slots) whose only kept copy is in a
	// pack to repack; Execute empties it as it copies them.
	keep slotSet
}

type packInfo struct {
	usedBlobs, unusedBlobs, duplicateBlobs uint64
	usedSize, unusedSize                   uint64
	tpe                                    blob.Type // mixedPack for both, noType before the first blob
	uncompressed                           bool
}

const (
	noType    blob.Type = 255
	mixedPack blob.Type = 254
)

type candidate struct {
	id blob.ID
	*packInfo
	mustCompress bool
}

// NewPlan finds the used blobs and decides what to repack and delete, by
// restic 0.19's rules. It loads the index unless it is loaded; the caller
// must hold the exclusive lock.
func NewPlan(ctx context.Context, r *repo.Repository, opts Options) (*Plan, error) {
	if opts.Printer == nil {
		opts.Printer = nopPrinter{}
	}
	pr := opts.Printer
	if r.Backend().Connections() < 2 {
		return nil, errors.New("prune requires a backend connection limit of at least two")
	}
	if r.Config().Version < 2 && opts.RepackUncompressed {
		return nil, errors.New("compression requires at least repository format version 2")
	}
	packSize := uint64(r.Options().PackSize)
	if packSize == 0 {
		packSize = repo.DefaultPackSize
	}
	if opts.SmallPackBytes > packSize {
		return nil, errors.New("repack-smaller-than exceeds repository packsize")
	}

	if err := r.EnsureIndex(ctx, nil); err != nil {
		return nil, err
	}
	used, err := findUsedBlobs(ctx, r, opts.IgnoreSnapshots, pr)
	if err != nil {
		return nil, err
	}
	pr.P("searching used packs...")
	var stats Stats
	packs, err := packInfoFromIndex(r.Index(), used, &stats, pr)
	if err != nil {
		return nil, err
	}
	pr.P("collecting packs for deletion and repacking")
	p := &Plan{r: r, opts: opts}
	if err := p.decide(ctx, packs, &stats); err != nil {
		return nil, err
	}
	p.stats = stats
	if len(p.repack) > 0 {
		// A used blob with a copy in a pack that stays needs no copying.
		// A pack that is missing does not count as staying (restic counts
		// it, and would lose a blob whose other copy it repacks).
		r.Index().EachEntry(func(e index.Entry) bool {
			if !has(p.remove, e.Pack) && !has(p.repack, e.Pack) && !has(p.ignore, e.Pack) {
				used.slots.del(e.Type, e.First)
			}
			return true
		})
		p.keep = used.slots
	}
	// The walk's and the counting's garbage goes before Execute allocates.
	runtime.GC()
	return p, nil
}

func has(set map[blob.ID]struct{}, id blob.ID) bool {
	_, ok := set[id]
	return ok
}

// packInfoFromIndex counts the copies of every used blob, refuses when one
// has none, and sums up each pack's used and unused blobs. Of a blob stored
// more than once exactly one copy counts as used, chosen like restic does:
// preferably in a pack with other used blobs, or in a pack of nothing but
// duplicates (what an interrupted prune leaves), else the last copy seen.
func packInfoFromIndex(idx *index.Index, used *usedBlobs, stats *Stats, pr Printer) (map[blob.ID]*packInfo, error) {
	if len(used.missing) > 0 {
		var missing []string
		for h := range used.missing {
			missing = append(missing, h.String())
		}
		slices.Sort(missing)
		pr.E("{%s} not found in the index\n\nIntegrity check failed: Data seems to be missing.\nWill not start prune to prevent (additional) data loss!", strings.Join(missing, " "))
		return nil, fmt.Errorf("%w: %d used blobs are in no pack", ErrIndexIncomplete, len(missing))
	}
	// copies counts the copies of each used blob (by its First slot),
	// saturating at 255; unused blobs stay at 0.
	var copies [3][]uint8
	for _, t := range []blob.Type{blob.DataBlob, blob.TreeBlob} {
		copies[t] = make([]uint8, idx.Slots(t))
	}
	idx.EachEntry(func(e index.Entry) bool {
		if c := &copies[e.Type][e.First]; used.slots.has(e.Type, e.First) && *c < math.MaxUint8 {
			*c++
		}
		return true
	})

	packs := make(map[blob.ID]*packInfo)
	hasDuplicates := false
	idx.EachEntry(func(e index.Entry) bool {
		ip := packs[e.Pack]
		if ip == nil {
			// Header size counts as used, as in restic.
			ip = &packInfo{tpe: noType, usedSize: uint64(pack.HeaderSize(nil))}
			packs[e.Pack] = ip
		}
		ip.usedSize += uint64(pack.HeaderSize([]pack.Blob{e.Blob}) - pack.HeaderSize(nil))
		if ip.tpe == noType {
			ip.tpe = e.Type
		} else if ip.tpe != e.Type {
			ip.tpe = mixedPack
		}
		size := uint64(e.Length)
		switch n := copies[e.Type][e.First]; {
		case n >= 2:
			hasDuplicates = true
			ip.unusedSize += size
			ip.unusedBlobs++
			ip.duplicateBlobs++
			stats.Size.Duplicate += size
			stats.Blobs.Duplicate++
		case n == 1:
			ip.usedSize += size
			ip.usedBlobs++
			stats.Size.Used += size
			stats.Blobs.Used++
		default:
			ip.unusedSize += size
			ip.unusedBlobs++
			stats.Size.Unused += size
			stats.Blobs.Unused++
		}
		if !e.IsCompressed() {
			ip.uncompressed = true
		}
		return true
	})

	if hasDuplicates {
		// The count of a duplicate goes down with each copy left unused;
		// 0 marks the last copy, which is then taken; 1 means one was taken.
		idx.EachEntry(func(e index.Entry) bool {
			c := &copies[e.Type][e.First]
			if !used.slots.has(e.Type, e.First) || *c == 1 {
				return true
			}
			ip := packs[e.Pack]
			size := uint64(e.Length)
			switch {
			case ip.usedBlobs > 0, ip.duplicateBlobs == ip.unusedBlobs, *c == 0:
				ip.usedSize += size
				ip.usedBlobs++
				ip.unusedSize -= size
				ip.unusedBlobs--
				stats.Size.Used += size
				stats.Blobs.Used++
				stats.Size.Duplicate -= size
				stats.Blobs.Duplicate--
				*c = 1
			default:
				*c--
				if *c == 1 {
					*c = 0
				}
			}
			return true
		})
	}
	var err error
	used.slots.each(func(t blob.Type, slot int) {
		if n := copies[t][slot]; n != 1 && err == nil {
			err = fmt.Errorf("internal error: blob of type %v in slot %d selected %d times", t, slot, n)
		}
	})
	if err != nil {
		return nil, err
	}
	return packs, nil
}

// targetPackSize is restic's threshold for small packs: 80 % of the larger
// of 4 MiB and the 3rd-percentile pack size, or --repack-smaller-than.
func targetPackSize(opts Options, packs map[blob.ID]*packInfo) uint64 {
	if opts.SmallPackBytes > 0 {
		return opts.SmallPackBytes
	}
	if len(packs) == 0 {
		return 0
	}
	sizes := make([]uint64, 0, len(packs))
	for _, ip := range packs {
		sizes = append(sizes, ip.usedSize+ip.unusedSize)
	}
	slices.Sort(sizes)
	return max(uint64(repo.MinPackSize), sizes[len(sizes)*3/100]) * 4 / 5
}

// decide sorts every pack into keep, repack or remove, as restic's
// decidePackAction does.
func (p *Plan) decide(ctx context.Context, packs map[blob.ID]*packInfo, stats *Stats) error {
	opts, pr := p.opts, p.opts.Printer
	p.unref = make(map[blob.ID]struct{})
	p.repack = make(map[blob.ID]struct{})
	p.remove = make(map[blob.ID]struct{})
	p.ignore = make(map[blob.ID]struct{})
	version := p.r.Config().Version
	target := targetPackSize(opts, packs)

	var candidates, smallCandidates []candidate
	err := p.r.List(ctx, backend.PackFile, func(id blob.ID, size int64) error {
		ip, ok := packs[id]
		if !ok {
			pr.V("will remove pack %v as it is unused and not indexed", id.Str())
			p.unref[id] = struct{}{}
			stats.Size.Unref += uint64(size)
			return nil
		}
		if ip.unusedSize+ip.usedSize != uint64(size) && ip.usedBlobs != 0 {
			// An unneeded pack of the wrong size is simply deleted below.
			pr.E("pack %s: calculated size %d does not match real size %d\nRun 'restic repair index'", id.Str(), ip.unusedSize+ip.usedSize, size)
			return ErrSizeNotMatching
		}
		switch {
		case ip.usedBlobs == 0:
			stats.Packs.Unused++
		case ip.unusedBlobs == 0:
			stats.Packs.Used++
		default:
			stats.Packs.PartlyUsed++
		}
		if ip.uncompressed {
			stats.Size.Uncompressed += ip.unusedSize + ip.usedSize
		}
		// v2: trees are always stored compressed, data when asked.
		mustCompress := version >= 2 && (ip.tpe == blob.TreeBlob || opts.RepackUncompressed) && ip.uncompressed
		switch {
		case ip.usedBlobs == 0:
			p.remove[id] = struct{}{}
			stats.Blobs.Remove += ip.unusedBlobs
			stats.Size.Remove += ip.unusedSize
		case opts.RepackCacheableOnly && ip.tpe == blob.DataBlob:
			stats.Packs.Keep++
		case ip.unusedBlobs == 0 && ip.tpe != mixedPack && !mustCompress:
			if uint64(size) >= target {
				stats.Packs.Keep++
			} else {
				smallCandidates = append(smallCandidates, candidate{id, ip, mustCompress})
			}
		default:
			candidates = append(candidates, candidate{id, ip, mustCompress})
		}
		delete(packs, id)
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrSizeNotMatching) {
			return err
		}
		return fmt.Errorf("list packs: %w", err)
	}

	// What is left in packs is indexed but missing: fine if unneeded.
	var missing []string
	for id, ip := range packs {
		if ip.usedBlobs == 0 {
			p.ignore[id] = struct{}{}
			stats.Blobs.Remove += ip.unusedBlobs
			stats.Size.Remove += ip.unusedSize
			continue
		}
		missing = append(missing, id.String())
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		pr.E("The index references %d needed pack files which are missing from the repository:", len(missing))
		for _, id := range missing {
			pr.E("  %v", id)
		}
		return ErrPacksMissing
	}
	if len(p.ignore) > 0 {
		pr.E("Missing but unneeded pack files are referenced in the index, will be repaired\n")
		for _, id := range sortedIDs(p.ignore) {
			pr.E("will forget missing pack file %v", id)
		}
	}

	if len(smallCandidates) < 10 {
		// Too few to be worth it; this also stops one small pack from
		// being repacked on every run.
		stats.Packs.Keep += uint64(len(smallCandidates))
	} else {
		candidates = append(candidates, smallCandidates...)
	}

	// Trees first, then packs below the target size, then the highest
	// share of unused data (a*d > c*b compares a/b with c/d exactly).
	sort.SliceStable(candidates, func(i, j int) bool {
		pi, pj := candidates[i].packInfo, candidates[j].packInfo
		switch {
		case pi.tpe != blob.DataBlob && pj.tpe == blob.DataBlob:
			return true
		case pj.tpe != blob.DataBlob && pi.tpe == blob.DataBlob:
			return false
		case pi.unusedSize+pi.usedSize < target && pj.unusedSize+pj.usedSize >= target:
			return true
		case pj.unusedSize+pj.usedSize < target && pi.unusedSize+pi.usedSize >= target:
			return false
		}
		return pi.unusedSize*pj.usedSize > pj.unusedSize*pi.usedSize
	})

	repack := func(c candidate) {
		p.repack[c.id] = struct{}{}
		stats.Blobs.Repack += c.unusedBlobs + c.usedBlobs
		stats.Size.Repack += c.unusedSize + c.usedSize
		stats.Blobs.Repackrm += c.unusedBlobs
		stats.Size.Repackrm += c.unusedSize
		if c.uncompressed {
			stats.Size.Uncompressed -= c.unusedSize + c.usedSize
		}
	}
	maxRepack := uint64(math.MaxUint64)
	if opts.LimitRepack {
		maxRepack = opts.MaxRepackBytes
	}
	maxUnusedAfter := opts.MaxUnused.limit(stats.Size.Used)
	for _, c := range candidates {
		remainingUnused := stats.Size.Duplicate + stats.Size.Unused - stats.Size.Remove - stats.Size.Repackrm
		reachedUnused := remainingUnused < maxUnusedAfter
		reachedRepack := stats.Size.Repack+c.unusedSize+c.usedSize >= maxRepack
		largeEnough := c.unusedSize+c.usedSize >= target
		switch {
		case reachedRepack:
			stats.Packs.Keep++
		case c.tpe != blob.DataBlob, c.mustCompress:
			// Trees, mixed packs and packs to compress are limited by
			// the repack size only.
			repack(c)
		case reachedUnused && largeEnough:
			stats.Packs.Keep++
		default:
			repack(c)
		}
	}

	stats.Packs.Unref = uint64(len(p.unref))
	stats.Packs.Repack = uint64(len(p.repack))
	stats.Packs.Remove = uint64(len(p.remove))
	if version < 2 {
		stats.Size.Uncompressed = 0
	}
	return nil
}

// Stats returns the plan's statistics.
func (p *Plan) Stats() Stats { return p.stats }

// UnreferencedPacks are packs that no index lists: deleted first.
func (p *Plan) UnreferencedPacks() []blob.ID { return sortedIDs(p.unref) }

// RepackPacks are the packs whose used blobs are copied before they are
// deleted.
func (p *Plan) RepackPacks() []blob.ID { return sortedIDs(p.repack) }

// RemovePacks are the packs without used blobs, deleted whole.
func (p *Plan) RemovePacks() []blob.ID { return sortedIDs(p.remove) }

func sortedIDs(set map[blob.ID]struct{}) []blob.ID {
	out := make([]blob.ID, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b blob.ID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// formatIDSet prints IDs as restic prints an ID set: short IDs in braces,
// sorted by full ID.
func formatIDSet(ids []blob.ID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.Str()
	}
	return "{" + strings.Join(s, " ") + "}"
}

// MemoryLimit returns a soft memory limit (for runtime/debug.SetMemoryLimit)
// for pruning r. Prune's live heap is the in-memory index plus a few bytes
// per blob and some MiB of buffers; without a limit the collector lets
// garbage grow the heap to (1 + GOGC/100) times that, and the index is large
// enough for this to dominate. The limit leaves a quarter of the index and
// 40 MiB above it, so the collector runs somewhat more often and only near
// the peak. Before the index is loaded the limit comes from an estimate
// (repo.Repository.IndexMemoryUse): call it again once the index is loaded.
func MemoryLimit(ctx context.Context, r *repo.Repository) (int64, error) {
	size, err := r.IndexMemoryUse(ctx)
	if err != nil {
		return 0, err
	}
	return size*5/4 + 40<<20, nil
}
