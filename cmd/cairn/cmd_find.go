package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/repo/walk"
)

type findOptions struct {
	filter          snapshotFilterFlags
	Oldest, Newest  string
	Snapshots       []string
	BlobID, TreeID  bool
	PackID          bool
	ShowPackID      bool
	CaseInsensitive bool
	Long            bool
	HumanReadable   bool
	Reverse         bool
}

func newFindCommand(a *app) *cobra.Command {
	var opts findOptions
	cmd := &cobra.Command{
		Use:   "find [flags] PATTERN...",
		Short: "Find a file, a directory or restic IDs",
		Long: `
The "find" command searches for files or directories in snapshots stored in
the repository, by restic's pattern rules (as for --exclude). With --blob,
--tree or --pack the patterns are IDs (full or the first eight hex digits)
and the command lists where those objects are used.

Snapshots are searched from the newest to the oldest; --reverse searches
from the oldest.

` + readOnlyExitStatus,
		Example: `cairn find config.json
cairn find --json "*.yml" "*.json"
cairn find --json --blob 420f620f b46ebe8a ddd38656
cairn find --show-pack-id --blob 420f620f
cairn find --tree 577c2bc9 f81f2e22 a62827a9
cairn find --pack 025c1d06`,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runFind(c.Context(), a, opts, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Oldest, "oldest", "O", "", "oldest modification date/time")
	f.StringVarP(&opts.Newest, "newest", "N", "", "newest modification date/time")
	f.StringArrayVarP(&opts.Snapshots, "snapshot", "s", nil, "snapshot `id` to search in (can be given multiple times)")
	f.BoolVar(&opts.BlobID, "blob", false, "pattern is a blob-ID")
	f.BoolVar(&opts.TreeID, "tree", false, "pattern is a tree-ID")
	f.BoolVar(&opts.PackID, "pack", false, "pattern is a pack-ID")
	f.BoolVar(&opts.ShowPackID, "show-pack-id", false, "display the pack-ID the blobs belong to (with --blob or --tree)")
	f.BoolVarP(&opts.CaseInsensitive, "ignore-case", "i", false, "ignore case for pattern")
	f.BoolVarP(&opts.Reverse, "reverse", "R", false, "reverse sort order oldest to newest")
	f.BoolVarP(&opts.Long, "long", "l", false, "use a long listing format showing size and mode")
	f.BoolVar(&opts.HumanReadable, "human-readable", false, "print sizes in human readable format")
	opts.filter.add(f, false)
	return cmd
}

// findTimeFormats are the layouts --oldest and --newest accept, in the
// local zone.
var findTimeFormats = []string{
	"2006-01-02",
	"2006-01-02 15:04",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 MST",
	"02.01.2006",
	"02.01.2006 15:04",
	"02.01.2006 15:04:05",
	"02.01.2006 15:04:05 -0700",
	"02.01.2006 15:04:05 MST",
	"Mon Jan 2 15:04:05 -0700 MST 2006",
}

func parseFindTime(s string) (time.Time, error) {
	for _, layout := range findTimeFormats {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unable to parse time: %q", s)
}

// findNodeJSON is a matching node in `find --json`: restic's node fields
// without name, content, subtree, device and attributes, plus the path
// and the permission string.
type findNodeJSON struct {
	Path        string      `json:"path,omitempty"`
	Permissions string      `json:"permissions,omitempty"`
	Type        tree.Type   `json:"type"`
	Mode        fs.FileMode `json:"mode,omitempty"`
	ModTime     time.Time   `json:"mtime,omitempty"`
	AccessTime  time.Time   `json:"atime,omitempty"`
	ChangeTime  time.Time   `json:"ctime,omitempty"`
	UID         uint32      `json:"uid"`
	GID         uint32      `json:"gid"`
	User        string      `json:"user,omitempty"`
	Group       string      `json:"group,omitempty"`
	Inode       uint64      `json:"inode,omitempty"`
	DeviceID    uint64      `json:"device_id,omitempty"`
	Size        uint64      `json:"size,omitempty"`
	Links       uint64      `json:"links,omitempty"`
	LinkTarget  string      `json:"linktarget,omitempty"`
	Error       string      `json:"error,omitempty"`
}

// findObjectJSON is a found blob or tree in `find --json --blob/--tree`.
type findObjectJSON struct {
	ObjectType string    `json:"object_type"`
	ID         string    `json:"id"`
	Path       string    `json:"path"`
	ParentTree string    `json:"parent_tree,omitempty"`
	SnapshotID string    `json:"snapshot"`
	Time       time.Time `json:"time,omitempty"`
}

// findOutput prints results as restic does. Its JSON is one array written
// piece by piece: for patterns one object per snapshot with matches
// ({"matches":[...],"hits":N,"snapshot":ID}), for IDs the objects.
type findOutput struct {
	long, human, json bool
	p                 *printer
	w                 io.Writer
	started           bool // "[" written
	cur, last         *repo.Snapshot
	hits              int
}

func (o *findOutput) write(s string) { io.WriteString(o.w, s) }

func (o *findOutput) node(p string, n *tree.Node) {
	if !o.json {
		if o.cur != o.last {
			if o.last != nil {
				o.p.P("")
			}
			o.last = o.cur
			o.p.P("Found matching entries in snapshot %s from %s", o.last.ID().Str(), o.last.Time.Local().Format(timeFormat))
		}
		// restic passes the line as a format string; a '%' in a name
		// comes out as Go's "%!x(MISSING)" there too.
		o.p.S(formatLsNode(p, n, o.long, o.human), noFormatArgs...)
		return
	}
	buf, err := json.Marshal(findNodeJSON{
		Path: p, Permissions: n.Mode.String(), Type: n.Type, Mode: n.Mode,
		ModTime: n.ModTime, AccessTime: n.AccessTime, ChangeTime: n.ChangeTime,
		UID: n.UID, GID: n.GID, User: n.User, Group: n.Group, Inode: n.Inode, DeviceID: n.DeviceID,
		Size: n.Size, Links: n.Links, LinkTarget: n.LinkTarget, Error: n.Error,
	})
	if err != nil {
		o.p.E("Marshal failed: %v", err)
		return
	}
	if !o.started {
		o.write("[")
		o.started = true
	}
	if o.cur != o.last {
		if o.last != nil {
			o.write(fmt.Sprintf("],\"hits\":%d,\"snapshot\":%q},", o.hits, o.last.ID().String()))
		}
		o.write(`{"matches":[`)
		o.last = o.cur
		o.hits = 0
	}
	if o.hits > 0 {
		o.write(",")
	}
	o.w.Write(buf)
	o.hits++
}

// noFormatArgs passes no arguments while keeping vet's printf check from
// flagging a deliberately non-constant format.
var noFormatArgs []any

func (o *findOutput) object(kind, id, p, parent string, sn *repo.Snapshot) {
	if !o.json {
		o.p.S("Found %s %s", kind, id)
		if kind == "blob" {
			o.p.S(" ... in file %s", p)
			o.p.S("     (tree %s)", parent)
		} else {
			o.p.S(" ... path %s", p)
		}
		o.p.S(" ... in snapshot %s (%s)", sn.ID().Str(), sn.Time.Local().Format(timeFormat))
		return
	}
	buf, err := json.Marshal(findObjectJSON{ObjectType: kind, ID: id, Path: p, ParentTree: parent, SnapshotID: sn.ID().String(), Time: sn.Time})
	if err != nil {
		o.p.E("Marshal failed: %v", err)
		return
	}
	if !o.started {
		o.write("[")
		o.started = true
	}
	if o.hits > 0 {
		o.write(",")
	}
	o.w.Write(buf)
	o.hits++
}

func (o *findOutput) finish() {
	if !o.json {
		return
	}
	if o.last != nil {
		o.write(fmt.Sprintf("],\"hits\":%d,\"snapshot\":%q}", o.hits, o.last.ID().String()))
	}
	if o.started {
		o.write("]\n")
	} else {
		o.write("[]\n")
	}
}

// finder holds one find run.
type finder struct {
	r              *repo.Repository
	patterns       []findPattern
	lower          bool
	oldest, newest time.Time
	out            *findOutput
	p              *printer
	// IDs searched for, by their full or short form (nil: not searching).
	blobIDs, treeIDs map[string]struct{}
	found            int
}

// errFindDone ends a walk once every tree looked for was found.
var errFindDone = errors.New("find: all tree IDs found")

func runFind(ctx context.Context, a *app, opts findOptions, args []string) error {
	if len(args) == 0 {
		return errors.New("wrong number of arguments")
	}
	p := a.printer()
	f := &finder{p: p, lower: opts.CaseInsensitive}
	pats := append([]string(nil), args...)
	for i := range pats {
		if opts.CaseInsensitive {
			pats[i] = strings.ToLower(pats[i])
		}
		f.patterns = append(f.patterns, newFindPattern(pats[i]))
	}
	var err error
	if opts.Oldest != "" {
		if f.oldest, err = parseFindTime(opts.Oldest); err != nil {
			return err
		}
	}
	if opts.Newest != "" {
		if f.newest, err = parseFindTime(opts.Newest); err != nil {
			return err
		}
	}
	if !f.newest.IsZero() && !f.oldest.IsZero() && f.oldest.After(f.newest) {
		return errors.New("--oldest must specify a time before --newest")
	}
	if (opts.BlobID && opts.TreeID) || (opts.BlobID && opts.PackID) || (opts.TreeID && opts.PackID) {
		return errors.New("cannot have several ID types")
	}

	ctx, r, done, err := a.openLocked(ctx, false, true)
	if err != nil {
		return err
	}
	defer done()
	if err := r.LoadIndex(ctx, nil); err != nil {
		return err
	}
	f.r = r
	f.out = &findOutput{long: opts.Long, human: opts.HumanReadable, json: a.gopts.JSON, p: p, w: a.term.Raw()}

	if opts.BlobID {
		f.blobIDs = setOf(pats)
	}
	if opts.TreeID {
		f.treeIDs = setOf(pats)
	}
	if opts.PackID {
		if err := f.packsToBlobs(ctx, pats); err != nil {
			return err
		}
	}

	list, err := selectSnapshots(ctx, r, &opts.filter, opts.Snapshots, p)
	if err != nil {
		return err
	}
	sort.Slice(list, func(i, j int) bool {
		if opts.Reverse {
			return list[i].Time.Before(list[j].Time)
		}
		return list[i].Time.After(list[j].Time)
	})
	for _, sn := range list {
		if f.blobIDs != nil || f.treeIDs != nil {
			if err := f.findIDs(ctx, sn); err != nil && !errors.Is(err, errFindDone) {
				return err
			}
			continue
		}
		if err := f.findInSnapshot(ctx, sn); err != nil {
			return err
		}
	}
	f.out.finish()
	if opts.ShowPackID && (f.blobIDs != nil || f.treeIDs != nil) {
		f.showPacks()
	}
	return nil
}

func setOf(list []string) map[string]struct{} {
	m := make(map[string]struct{}, len(list))
	for _, s := range list {
		m[s] = struct{}{}
	}
	return m
}

// walkSnapshot walks a snapshot's tree, the root first (n nil). A tree
// that cannot be loaded is reported and skipped; the search goes on.
func (f *finder) walkSnapshot(ctx context.Context, sn *repo.Snapshot, visit func(parent blob.ID, p string, n *tree.Node) error) error {
	if sn.Tree == nil {
		return fmt.Errorf("snapshot %v has no tree", sn.ID().Str())
	}
	f.out.cur = sn
	return walk.Walk(ctx, f.r, *sn.Tree, func(parent blob.ID, p string, n *tree.Node, loadErr error) error {
		if loadErr != nil {
			f.p.S("Unable to load tree %s", parent)
			f.p.S(" ... which belongs to snapshot %s", sn.ID())
			return walk.SkipNode
		}
		return visit(parent, p, n)
	})
}

// anyPattern reports whether test holds for one of the patterns.
func (f *finder) anyPattern(test func(findPattern) (bool, error)) (bool, error) {
	for _, pat := range f.patterns {
		ok, err := test(pat)
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func (f *finder) findInSnapshot(ctx context.Context, sn *repo.Snapshot) error {
	return f.walkSnapshot(ctx, sn, func(_ blob.ID, p string, n *tree.Node) error {
		if n == nil {
			return nil
		}
		norm := p
		if f.lower {
			norm = strings.ToLower(p)
		}
		matched, err := f.anyPattern(func(pat findPattern) (bool, error) { return pat.Match(norm) })
		if err != nil {
			return err
		}
		var noMatch error
		if n.Type == tree.TypeDir {
			childMay, err := f.anyPattern(func(pat findPattern) (bool, error) { return pat.ChildMayMatch(norm) })
			if err != nil {
				return err
			}
			if !childMay {
				noMatch = walk.SkipNode
			}
		}
		if !matched {
			return noMatch
		}
		if !f.oldest.IsZero() && n.ModTime.Before(f.oldest) {
			return noMatch
		}
		if !f.newest.IsZero() && n.ModTime.After(f.newest) {
			return noMatch
		}
		f.out.node(p, n)
		return nil
	})
}

// wanted reports whether id is in set by its full or short form.
func wanted(set map[string]struct{}, id blob.ID) bool {
	if _, ok := set[id.String()]; ok {
		return true
	}
	_, ok := set[id.Str()]
	return ok
}

func (f *finder) findTree(id blob.ID, p string) error {
	if !wanted(f.treeIDs, id) {
		return nil
	}
	f.out.object("tree", id.String(), p, "", f.out.cur)
	f.found++
	if f.found >= len(f.treeIDs) && f.blobIDs == nil {
		return errFindDone
	}
	return nil
}

func (f *finder) findIDs(ctx context.Context, sn *repo.Snapshot) error {
	return f.walkSnapshot(ctx, sn, func(parent blob.ID, p string, n *tree.Node) error {
		if n == nil {
			if p == "/" && f.treeIDs != nil {
				return f.findTree(parent, "/")
			}
			return nil
		}
		if n.Type == tree.TypeDir && f.treeIDs != nil && n.Subtree != nil {
			if err := f.findTree(*n.Subtree, p); err != nil {
				return err
			}
		}
		if n.Type == tree.TypeFile && f.blobIDs != nil {
			for _, id := range n.Content {
				if err := ctx.Err(); err != nil {
					return err
				}
				full := id.String()
				if _, ok := f.blobIDs[full]; !ok {
					if _, ok := f.blobIDs[id.Str()]; !ok {
						continue
					}
					// From now on the blob is known by its full ID.
					f.blobIDs[full] = struct{}{}
					delete(f.blobIDs, id.Str())
				}
				f.out.object("blob", full, p, parent.String(), sn)
			}
		}
		return nil
	})
}

// showPacks prints, for each ID searched, the pack that holds it.
func (f *finder) showPacks() {
	for id := range f.blobIDs {
		f.showPack(id, blob.DataBlob)
	}
	for id := range f.treeIDs {
		f.showPack(id, blob.TreeBlob)
	}
}

func (f *finder) showPack(s string, t blob.Type) {
	id, err := blob.ParseID(s)
	if err != nil {
		f.p.S("Note: cannot find pack for object '%s', unable to parse ID: %v", s, err)
		return
	}
	locs := f.r.Index().Lookup(blob.Handle{ID: id, Type: t})
	if len(locs) == 0 {
		f.p.S("Object %s with type %s not found in the index", t, id.Str())
		return
	}
	l := locs[0]
	f.p.S("Object belongs to pack %s", l.Pack)
	f.p.S(" ... Pack %s: <Blob (%v) %v, offset %v, length %v, uncompressed length %v>", l.Pack.Str(), t, id.Str(), l.Offset, l.Length, l.UncompressedLength)
}

// errAllPacksFound ends the pack listing early.
var errAllPacksFound = errors.New("all packs found")

// packsToBlobs turns the pack IDs searched for into the blobs they hold:
// from the pack's own header when the pack file exists, else from the
// index (with a warning).
func (f *finder) packsToBlobs(ctx context.Context, packs []string) error {
	pending := setOf(packs)
	if f.blobIDs == nil {
		f.blobIDs = map[string]struct{}{}
	}
	if f.treeIDs == nil {
		f.treeIDs = map[string]struct{}{}
	}
	err := f.r.List(ctx, backend.PackFile, func(id blob.ID, size int64) error {
		if _, ok := pending[id.String()]; ok {
			delete(pending, id.String())
		} else if _, ok := pending[id.Str()]; ok {
			delete(pending, id.Str())
		} else {
			return nil
		}
		// Only the header is read, as restic does: a pack is 16 MiB or more.
		blobs, err := f.r.ListPack(ctx, id, size)
		if err != nil {
			return err
		}
		for _, b := range blobs {
			switch b.Type {
			case blob.DataBlob:
				f.blobIDs[b.ID.String()] = struct{}{}
			case blob.TreeBlob:
				f.treeIDs[b.ID.String()] = struct{}{}
			}
		}
		if len(pending) == 0 {
			return errAllPacksFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errAllPacksFound) {
		return err
	}
	if len(pending) > 0 {
		f.packsFromIndex(pending)
	}
	if len(pending) > 0 {
		list := make([]string, 0, len(pending))
		for id := range pending {
			list = append(list, id)
		}
		sort.Strings(list)
		return fmt.Errorf("unable to find pack(s): %v", list)
	}
	return nil
}

// packsFromIndex takes the data blobs of missing pack files from the index
// and removes the packs it knows from pending.
func (f *finder) packsFromIndex(pending map[string]struct{}) {
	known := map[string]struct{}{}
	f.r.Index().Each(func(l index.Location) bool {
		full := l.Pack.String()
		if _, ok := pending[full]; !ok {
			if _, ok := pending[l.Pack.Str()]; !ok {
				return true
			}
			delete(pending, l.Pack.Str())
			pending[full] = struct{}{}
		}
		// restic records every blob of such a pack as a data blob.
		f.blobIDs[l.ID.String()] = struct{}{}
		known[full] = struct{}{}
		return true
	})
	if len(known) == 0 {
		return
	}
	list := make([]string, 0, len(known))
	for id := range known {
		delete(pending, id)
		list = append(list, id)
	}
	f.p.E("some pack files are missing from the repository, getting their blobs from the repository index: %v\n\n", list)
}
