package restore

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

// dirEntry is a directory of the plan.
type dirEntry struct {
	node   *tree.Node // nil for the restore root
	loc    string     // path inside the restored tree: "/" or "/a/b"
	path   string     // path on the host
	parent *dirEntry

	treeID  blob.ID
	tree    *tree.Tree // dropped once planned
	loaded  bool       // the tree was read
	loadErr error
	// selected: the directory itself is selected; descend: its children
	// may be; restored: something below it is restored. A directory is
	// created and gets its metadata when selected or restored.
	selected, descend, restored bool
	// names lists every name in the directory's tree, for Delete.
	names []string

	// Set when the directory is made. fresh means this restore created it
	// (or found it empty), so nothing inside existed before and entries can
	// be created without looking first. setgid means new entries take the
	// directory's group.
	fresh, setgid bool
	failed        bool // could not be created; nothing inside can be
}

func (d *dirEntry) used() bool { return d.selected || d.restored }

// meta is the metadata restored on an entry. Files keep it instead of
// their tree node: a restore of a million files holds a million of these,
// and a node is several times larger.
type meta struct {
	mode         fs.FileMode
	uid, gid     uint32
	atime, mtime unix.Timespec
	xattrs       []tree.ExtendedAttribute
	symlink      bool
}

func metaOf(n *tree.Node) meta {
	atime := n.AccessTime
	if atime.IsZero() {
		atime = n.ModTime
	}
	return meta{
		mode: n.Mode, uid: n.UID, gid: n.GID,
		atime: timespec(atime), mtime: timespec(n.ModTime),
		xattrs: n.ExtendedAttributes, symlink: n.Type == tree.TypeSymlink,
	}
}

// modTime returns the modification time as a time.Time.
func (m *meta) modTime() time.Time { return time.Unix(m.mtime.Sec, m.mtime.Nsec) }

// fileEntry is a regular file of the plan.
type fileEntry struct {
	meta
	name    string
	dir     *dirEntry
	size    uint64    // as the tree says
	content []blob.ID // the node's blobs

	// Decided before content is written.
	skip     bool       // kept as it is (overwrite mode): nothing to do
	metaOnly bool       // content already right: only metadata
	existing *fileState // blob matches of an existing file, or nil
	existed  bool       // something was at path before (xattrs to clean up)
	sparse   bool       // write all-zero ranges as holes
	blobSize int64      // sum of the blob lengths
	dests    int        // blob writes planned

	// Content phase, guarded by mu.
	mu           sync.Mutex
	created      bool // the first writer created (or truncated) the file
	createFailed bool // and failed (the error is in errs)
	pending      int  // blob writes not yet done
	errs         []error
	written      bool // content complete and metadata applied
}

// loc and path are computed when needed rather than stored for every file.
func (f *fileEntry) loc() string  { return joinLoc(f.dir.loc, f.name) }
func (f *fileEntry) path() string { return f.dir.path + "/" + f.name }

func (f *fileEntry) addErr(err error) {
	if len(f.errs) < maxFileErrors {
		f.errs = append(f.errs, err)
	}
}

// maxFileErrors bounds the errors kept for one file: a file whose pack is
// gone would otherwise list every blob.
const maxFileErrors = 4

// otherEntry is a symlink, FIFO or device node, or a hard link to another
// entry of the plan.
type otherEntry struct {
	node *tree.Node
	loc  string
	path string
	dir  *dirEntry
	// For a hard link, linkFile or linkOther is the first entry with the
	// same device and inode; both are nil otherwise.
	linkFile  *fileEntry
	linkOther *otherEntry
	done      bool // created, so that hard links to it can be made
}

// linkKey identifies an inode of the backed-up file system.
type linkKey struct{ dev, ino uint64 }

// plan loads the trees level by level (several at once) and builds the
// lists of directories, files and other nodes to restore.
func (rs *restorer) plan(ctx context.Context, rootID blob.ID) error {
	root := &dirEntry{loc: "/", path: rs.target, treeID: rootID, selected: false, descend: true}
	linkFiles := map[linkKey]*fileEntry{}
	linkOthers := map[linkKey]*otherEntry{}
	level := []*dirEntry{root}
	for len(level) > 0 {
		// Identical subtrees of one level are loaded once; the trees are
		// not kept beyond their level, so that the nodes of files can go.
		cache := map[blob.ID]*treeResult{}
		if err := rs.loadTrees(ctx, level, cache); err != nil {
			return err
		}
		rs.dirs = append(rs.dirs, level)
		var next []*dirEntry
		for _, d := range level {
			next = rs.planDir(d, next, linkFiles, linkOthers)
		}
		level = next
	}
	// A directory counts as restored when anything below it is, so that it
	// is created and gets its metadata (restic's childHasRestored).
	for i := len(rs.dirs) - 1; i > 0; i-- {
		for _, d := range rs.dirs[i] {
			if d.used() {
				d.parent.restored = true
			}
		}
	}
	if p := rs.opts.Progress; p != nil {
		var bytes int64
		for _, f := range rs.files {
			bytes += int64(f.size)
		}
		p.FilesTotal.Store(int64(len(rs.files) + len(rs.others) + len(rs.links)))
		p.BytesTotal.Store(bytes)
		p.TotalsKnown.Store(true)
	}
	return nil
}

type treeResult struct {
	t   *tree.Tree
	err error
}

// loadTrees loads the trees of one level, each distinct ID once.
func (rs *restorer) loadTrees(ctx context.Context, level []*dirEntry, cache map[blob.ID]*treeResult) error {
	var ids []blob.ID
	for _, d := range level {
		if !d.descend {
			continue
		}
		if _, ok := cache[d.treeID]; !ok {
			cache[d.treeID] = nil
			ids = append(ids, d.treeID)
		}
	}
	results := make([]treeResult, len(ids))
	err := forEach(ctx, rs.workers, len(ids), noState, func(ctx context.Context, _ struct{}, i int) error {
		t, err := rs.r.LoadTree(ctx, ids[i])
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		results[i] = treeResult{t, err}
		return nil
	})
	if err != nil {
		return err
	}
	for i, id := range ids {
		cache[id] = &results[i]
	}
	for _, d := range level {
		if res := cache[d.treeID]; d.descend {
			d.tree, d.loadErr = res.t, res.err
		}
	}
	return nil
}

// validName reports whether name is a single path component that stays in
// its directory.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

func joinLoc(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// planDir adds the entries of d's tree to the plan and returns next with
// the subdirectories whose trees must be loaded appended.
func (rs *restorer) planDir(d *dirEntry, next []*dirEntry, linkFiles map[linkKey]*fileEntry, linkOthers map[linkKey]*otherEntry) []*dirEntry {
	if !d.descend {
		return next
	}
	if d.loadErr != nil {
		rs.fail(d.loc, fmt.Errorf("load tree %s: %w", d.treeID.Str(), d.loadErr))
		return next
	}
	d.loaded = true
	nodes := d.tree.Nodes()
	ordered := d.tree.Ordered()
	d.tree = nil // what files need is copied out below
	var seen map[string]bool
	if !ordered {
		// Names in a well-formed tree are sorted and unique; in any other
		// tree, look for duplicates.
		seen = make(map[string]bool, len(nodes))
	}
	if rs.opts.Delete {
		d.names = make([]string, 0, len(nodes))
	}
	for _, n := range nodes {
		if rs.opts.Delete {
			d.names = append(d.names, n.Name)
		}
		if !validName(n.Name) {
			rs.fail(d.loc, fmt.Errorf("%w %q: refusing to restore it", ErrInvalidName, n.Name))
			rs.noDelete = true
			continue
		}
		if seen != nil {
			if seen[n.Name] {
				rs.fail(joinLoc(d.loc, n.Name), fmt.Errorf("%w: the name occurs more than once in tree %s", ErrInvalidName, d.treeID.Str()))
				rs.noDelete = true
				continue
			}
			seen[n.Name] = true
		}
		if n.Type == tree.TypeSocket {
			continue // sockets cannot be restored; restic skips them too
		}
		loc := joinLoc(d.loc, n.Name)
		p := d.path + "/" + n.Name
		selected, descend := rs.sel.selects(loc, n.Type == tree.TypeDir)
		switch n.Type {
		case tree.TypeDir:
			if n.Subtree == nil {
				rs.fail(loc, fmt.Errorf("directory without subtree in tree %s", d.treeID.Str()))
				continue
			}
			if selected || descend {
				// A selected directory that is not descended into is still
				// made and gets its metadata.
				next = append(next, &dirEntry{node: n, loc: loc, path: p, parent: d, treeID: *n.Subtree, selected: selected, descend: descend})
			}
		case tree.TypeFile:
			if !selected {
				continue
			}
			d.restored = true
			var k linkKey
			if n.Links > 1 && n.Inode != 0 {
				k = linkKey{n.DeviceID, n.Inode}
				if leader, ok := linkFiles[k]; ok {
					rs.links = append(rs.links, &otherEntry{node: n, loc: loc, path: p, dir: d, linkFile: leader})
					continue
				}
			}
			f := &fileEntry{meta: metaOf(n), name: n.Name, dir: d, size: n.Size, content: n.Content}
			if k != (linkKey{}) {
				linkFiles[k] = f
			}
			rs.files = append(rs.files, f)
		default:
			if !selected {
				continue
			}
			d.restored = true
			o := &otherEntry{node: n, loc: loc, path: p, dir: d}
			if n.Links > 1 && n.Inode != 0 {
				k := linkKey{n.DeviceID, n.Inode}
				if leader, ok := linkOthers[k]; ok && leader.node.Type == n.Type {
					o.linkOther = leader
					rs.links = append(rs.links, o)
					continue
				}
				if _, ok := linkOthers[k]; !ok {
					linkOthers[k] = o
				}
			}
			rs.others = append(rs.others, o)
		}
	}
	return next
}
