package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/sources"
)

// Hard links in streams. A tar stream holds a hard link's content only
// once, under its first name; sources/tar hands later names to a visitor
// with a VisitLink method instead of Visit. The backup gives every name
// the first name's content list and records the names the way restic
// records hard links: the same inode number and a link count above one on
// each node, so that a restore links them again. Streams carry no inode
// numbers, so each group gets a made-up one, counted from 1 in stream
// order (stable for an unchanged stream); the device ID stays 0.

// streamFile is a regular file of a streamed walk that a later name may
// link to.
type streamFile struct {
	node  *tree.Node
	job   *fileJob // nil when the content was known at once (unchanged)
	group *linkGroup
}

// linkGroup is one set of names for the same content.
type linkGroup struct {
	inode uint64
	nodes []*tree.Node
}

// add puts n in the group and updates the link count of every name. For
// streamed sources no tree is encoded before the walk ends, so the nodes
// of earlier names can still change.
func (g *linkGroup) add(n *tree.Node) {
	g.nodes = append(g.nodes, n)
	for _, m := range g.nodes {
		m.Inode, m.DeviceID, m.Links = g.inode, 0, uint64(len(g.nodes))
	}
}

// linkWait is a name waiting for the content of a file still being read.
type linkWait struct {
	frame *dirFrame
	slot  *slot
	node  *tree.Node
	path  string
}

// jobLinks is the part of a fileJob that hard links to it use.
type jobLinks struct {
	mu       sync.Mutex
	finished bool // the job's node is complete (or the job failed)
	waiting  []linkWait
}

// rememberFile records a streamed regular file for later hard links.
func (b *backuper) rememberFile(p string, n *tree.Node, job *fileJob) {
	if !b.info.Streamed {
		return
	}
	if b.streamFiles == nil {
		b.streamFiles = make(map[string]*streamFile)
	}
	b.streamFiles[p] = &streamFile{node: n, job: job}
}

// VisitLink stores e as another name of the regular file at target,
// visited earlier in this walk (see sources/tar.LinkVisitor).
func (v *visitor) VisitLink(ctx context.Context, e *sources.Entry, target string) error {
	b := (*backuper)(v)
	if e.Path == "" || e.Type != sources.File {
		return fmt.Errorf("source reported an invalid hard link %q (%v)", e.Path, e.Type)
	}
	sf := b.streamFiles[target]
	if sf == nil {
		b.warn(e.HostPath, fmt.Errorf("hard link to %q, which is not a file stored by this backup", target))
		return nil
	}
	dir, _ := splitPath(e.Path)
	up := b.frameFor(ctx, dir)
	n := newNode(e, &b.opts)
	s := &slot{}
	if up.prevTree != nil {
		s.prev = up.prevTree.Find(n.Name)
	}
	b.streamFiles[e.Path] = &streamFile{node: n, job: sf.job, group: sf.group}
	job := sf.job
	if job == nil {
		// The content was known at once (unchanged since the parent).
		b.addToGroup(sf, n)
		b.streamFiles[e.Path].group = sf.group
		up.slots = append(up.slots, s)
		b.completeLink(s, n, sf.node)
		return nil
	}
	// The first name may still be read by the blob workers: its node
	// changes only under the job's lock.
	job.links.mu.Lock()
	b.addToGroup(sf, n)
	b.streamFiles[e.Path].group = sf.group
	if !job.links.finished {
		up.addSlot(s)
		job.links.waiting = append(job.links.waiting, linkWait{frame: up, slot: s, node: n, path: e.HostPath})
		job.links.mu.Unlock()
		return nil
	}
	failed := job.failed.Load()
	if !failed {
		up.slots = append(up.slots, s)
		b.completeLink(s, n, sf.node)
	}
	job.links.mu.Unlock()
	if failed {
		b.warn(e.HostPath, fmt.Errorf("hard link to %q, whose content could not be read", target))
	}
	return nil
}

// addToGroup puts n in the group of sf, making one on the first link.
func (b *backuper) addToGroup(sf *streamFile, n *tree.Node) {
	if sf.group == nil {
		b.linkGroups++
		sf.group = &linkGroup{inode: b.linkGroups}
		sf.group.add(sf.node)
	}
	sf.group.add(n)
}

// completeLink gives a hard link the content of the name it links to.
func (b *backuper) completeLink(s *slot, n, first *tree.Node) {
	n.Content = slices.Clone(first.Content)
	n.Size = first.Size
	s.node = n
	switch {
	case s.prev == nil:
		b.filesNew.Add(1)
	case sameButLinks(s.prev, n):
		b.filesUnmodified.Add(1)
	default:
		b.filesChanged.Add(1)
	}
	if b.opts.Progress != nil {
		b.opts.Progress.Files.Add(1)
	}
}

// sameButLinks compares nodes leaving out the link count and inode, which
// are final only once the whole group has been seen.
func sameButLinks(prev, n *tree.Node) bool {
	c := *n
	c.Inode, c.DeviceID, c.Links = prev.Inode, prev.DeviceID, prev.Links
	return prev.Equal(&c)
}

// finishLinks completes the hard links that waited for job, once its node
// is done; a failed job leaves them out with a warning.
func (b *backuper) finishLinks(ctx context.Context, job *fileJob) error {
	job.links.mu.Lock()
	job.links.finished = true
	waiting := job.links.waiting
	job.links.waiting = nil
	failed := job.failed.Load()
	if !failed {
		for _, w := range waiting {
			b.completeLink(w.slot, w.node, job.node)
		}
	}
	job.links.mu.Unlock()
	var errs []error
	for _, w := range waiting {
		if failed {
			b.warn(w.path, fmt.Errorf("hard link to %s, whose content could not be read", job.hostPath))
		}
		errs = append(errs, b.childDone(ctx, w.frame))
	}
	return errors.Join(errs...)
}
