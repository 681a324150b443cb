package prune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// ErrDeleteForbidden means the backend refuses to delete files, as an
// append-only rest-server does: prune stops before changing anything.
var ErrDeleteForbidden = errors.New("the repository does not allow deleting files (append-only?)")

// Execute carries the plan out, in restic's order, so that the repository
// stays valid wherever it stops:
//  1. packs no index lists are deleted (nothing refers to them);
//  2. the used blobs of the packs to repack are copied into new packs, whose
//     index files are written;
//  3. a new full index without the packs to delete replaces every old index
//     file (new files saved before old ones are deleted);
//  4. the packs are deleted.
//
// Failing to delete a pack is reported and skipped: an extra pack does no
// harm, and the next prune removes it. With DryRun it prints the packs it
// would touch and changes nothing. A plan runs once.
func (p *Plan) Execute(ctx context.Context) error {
	pr := p.opts.Printer
	if p.opts.DryRun {
		pr.V("Repeated prune dry-runs can report slightly different amounts of data to keep or repack. This is expected behavior.\n\n")
		if len(p.unref) > 0 {
			pr.V("Would have removed the following unreferenced packs:\n%v\n\n", formatIDSet(p.UnreferencedPacks()))
		}
		pr.V("Would have repacked and removed the following packs:\n%v\n\n", formatIDSet(p.RepackPacks()))
		pr.V("Would have removed the following no longer used packs:\n%v\n\n", formatIDSet(p.RemovePacks()))
		return nil
	}
	r := p.r
	if r == nil {
		return errors.New("prune: the plan was executed already")
	}
	p.r = nil

	if len(p.unref)+len(p.repack)+len(p.remove)+len(p.ignore) == 0 {
		pr.P("done")
		return nil
	}
	// restic finds out only when the first delete fails, after it wrote
	// new packs and index files; trying first leaves the repository as it
	// was but for an empty index file.
	if err := probeDelete(ctx, r); err != nil {
		return err
	}

	if len(p.unref) > 0 {
		pr.P("deleting unreferenced packs")
		deletePacks(ctx, r.Backend(), p.UnreferencedPacks(), pr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if len(p.repack) > 0 {
		pr.P("repacking packs")
		if err := p.copyKept(ctx, r); err != nil {
			// The copy dropped the packs it had copied from the
			// in-memory index; the index files still list them.
			r.UnloadIndex()
			return fmt.Errorf("repack: %w", err)
		}
		left := 0
		p.keep.each(func(blob.Type, int) { left++ })
		if left != 0 {
			r.UnloadIndex()
			pr.E("%d blobs were not repacked\n\nIntegrity check failed.", left)
			return errors.New("internal error: blobs were not repacked")
		}
		p.keep = slotSet{}
		for id := range p.repack {
			p.remove[id] = struct{}{}
		}
	}

	// The copy's garbage goes before the index rewrite.
	runtime.GC()
	drop := make(map[blob.ID]struct{}, len(p.ignore)+len(p.remove))
	for id := range p.ignore {
		drop[id] = struct{}{}
	}
	for id := range p.remove {
		drop[id] = struct{}{}
	}
	if len(drop) > 0 {
		pr.P("rebuilding index")
		_, err := r.RewriteIndex(ctx, repo.RewriteIndexOptions{
			Drop: func(id blob.ID) bool { _, ok := drop[id]; return ok },
			Progress: func(s repo.RewriteIndexProgress) {
				if s.Deleted > 0 && s.LastDeleteErr == nil {
					pr.VV("removed index %v", s.LastDeleted)
				}
			},
		})
		if err != nil {
			// Old index files that still list the packs may remain:
			// deleting the packs now would leave the index pointing at
			// nothing. The in-memory index lacks the copied packs.
			r.UnloadIndex()
			return fmt.Errorf("rebuild index (no pack was deleted): %w", err)
		}
	}

	if len(p.remove) > 0 {
		pr.P("removing %d old packs", len(p.remove))
		deletePacks(ctx, r.Backend(), p.RemovePacks(), pr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pr.P("done")
	return nil
}

// probeDelete saves an empty index file and deletes it again. A backend
// that forbids deleting (an append-only rest-server; the REST backend asks
// whether a file exists before deleting it, so a made-up name would not
// tell) fails here, before anything else changes. The empty index file it
// then leaves is valid: readers find no packs in it, and the next index
// rewrite removes it.
func probeDelete(ctx context.Context, r *repo.Repository) error {
	f := index.File{Packs: []index.PackEntry{}}
	buf, err := f.Encode()
	if err != nil {
		return err
	}
	id, err := r.SaveUnpacked(ctx, backend.IndexFile, buf)
	if err != nil {
		return fmt.Errorf("prune: test write: %w", err)
	}
	err = r.Backend().Remove(ctx, backend.Handle{Type: backend.IndexFile, Name: id.String()})
	switch {
	case err == nil, errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("prune: %w: %v", ErrDeleteForbidden, err)
	}
	return fmt.Errorf("prune: test delete in %s: %w", r.Backend().Location(), err)
}

// deletePacks removes packs in parallel, reporting (not failing on) each
// pack that cannot be removed.
func deletePacks(ctx context.Context, be backend.Backend, ids []blob.ID, pr Printer) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(int(max(1, be.Connections())))
	var mu sync.Mutex
	for _, id := range ids {
		g.Go(func() error {
			err := be.Remove(gctx, backend.Handle{Type: backend.PackFile, Name: id.String()})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				pr.E("unable to remove %v/%v from the repository", backend.PackFile, id)
				return nil
			}
			pr.VV("removed %v/%v", backend.PackFile, id)
			return nil
		})
	}
	_ = g.Wait()
}

// copyKept copies the kept blobs of the packs to repack into new packs. Each
// worker streams one pack at a time and holds one blob, so memory does not
// grow with the pack size; one connection stays free for the uploads. A
// pack's list of blobs is read from the index when its turn comes, and its
// entries are dropped from the in-memory index once its blobs are copied:
// the index holds about as many entries at the end as at the start instead
// of the old and the new copies together. On error the in-memory index is
// incomplete: the caller unloads it.
func (p *Plan) copyKept(ctx context.Context, r *repo.Repository) error {
	idx := r.Index()
	w, err := r.NewBlobWriter(ctx)
	if err != nil {
		return err
	}
	var keepMu sync.Mutex
	// take reports whether the blob still needs copying and claims it: a
	// blob in two packs being repacked is copied once, and a retried
	// download does not copy it again.
	take := func(t blob.Type, first int32) bool {
		keepMu.Lock()
		defer keepMu.Unlock()
		if !p.keep.has(t, int(first)) {
			return false
		}
		p.keep.del(t, int(first))
		return true
	}

	g, gctx := errgroup.WithContext(ctx)
	work := make(chan blob.ID)
	g.Go(func() error {
		defer close(work)
		for _, id := range p.RepackPacks() {
			select {
			case work <- id:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	workers := int(max(1, r.Backend().Connections()-1))
	for range workers {
		g.Go(func() error {
			var blobs []keptBlob // reused from pack to pack
			for id := range work {
				blobs = blobs[:0]
				keepMu.Lock()
				idx.EachEntryOf(id, func(e index.Entry) bool {
					if p.keep.has(e.Type, e.First) {
						blobs = append(blobs, keptBlob{e.Blob, int32(e.First)})
					}
					return true
				})
				keepMu.Unlock()
				if err := copyPack(gctx, r, w, id, blobs, take); err != nil {
					return err
				}
				// Its blobs are in the writer now: the old entries
				// are not needed any more (the index files still list
				// them until the rewrite).
				idx.DropPacks([]blob.ID{id})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		// Packs uploaded so far get their index files: their blobs are
		// duplicates that the next prune sorts out.
		_ = w.Abort(context.WithoutCancel(ctx))
		return err
	}
	return w.Flush(ctx)
}

// keptBlob is a blob to copy and its claim in the plan's keep set.
type keptBlob struct {
	pack.Blob
	first int32
}

// copyPack reads the blobs of one pack in a single request (from its first
// to its last kept blob) and saves those that take claims.
func copyPack(ctx context.Context, r *repo.Repository, w *repo.BlobWriter, id blob.ID, blobs []keptBlob, take func(blob.Type, int32) bool) error {
	if len(blobs) == 0 {
		return nil
	}
	slices.SortFunc(blobs, func(a, b keptBlob) int { return int(int64(a.Offset) - int64(b.Offset)) })
	start := int64(blobs[0].Offset)
	last := blobs[len(blobs)-1]
	length := int64(last.Offset) + int64(last.Length) - start
	h := backend.Handle{Type: backend.PackFile, Name: id.String(), IsMetadata: blobs[0].Type == blob.TreeBlob}
	var buf, plain []byte
	err := r.Backend().Load(ctx, h, int(length), start, func(rd io.Reader) error {
		pos := start
		for _, b := range blobs {
			if int64(b.Offset) < pos {
				return fmt.Errorf("pack %s: index lists overlapping blobs at offset %d", id.Str(), b.Offset)
			}
			if _, err := io.CopyN(io.Discard, rd, int64(b.Offset)-pos); err != nil {
				return err
			}
			if cap(buf) < int(b.Length) {
				buf = make([]byte, b.Length)
			}
			buf = buf[:b.Length]
			if _, err := io.ReadFull(rd, buf); err != nil {
				return err
			}
			pos = int64(b.Offset) + int64(b.Length)
			if !take(b.Type, b.first) {
				continue
			}
			// The plaintext goes to plain, sized for this blob, so
			// that neither decryption nor decompression allocates
			// from blob to blob. buf is read again for the next blob.
			need := int(b.UncompressedLength)
			if need == 0 {
				need = int(b.Length)
			}
			if cap(plain) < need {
				plain = make([]byte, 0, need)
			}
			data, err := r.OpenBlob(b.Handle, buf, b.UncompressedLength, plain)
			if err != nil {
				return fmt.Errorf("pack %s: %w", id.Str(), err)
			}
			if _, err := w.SaveBlobAgain(ctx, b.Type, data, b.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load pack %s: %w", id.Str(), err)
	}
	return nil
}
