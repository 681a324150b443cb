package main

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

type diffOptions struct {
	Metadata bool
}

func newDiffCommand(a *app) *cobra.Command {
	var opts diffOptions
	cmd := &cobra.Command{
		Use:   "diff [flags] snapshotID snapshotID",
		Short: "Show differences between two snapshots",
		Long: `
The "diff" command shows differences from the first to the second snapshot.
The first characters in each line display what has happened to a particular
file or directory:

* +  The item was added
* -  The item was removed
* U  The metadata (access mode, timestamps, ...) for the item was updated
* M  The file's content was modified
* T  The type was changed, e.g. a file was made a symlink
* ?  Bitrot detected: The file's content has changed but all metadata is the same

"snapshotID:subfolder" compares only what is below subfolder.

` + readOnlyExitStatus,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runDiff(c.Context(), a, opts, args)
		},
	}
	cmd.Flags().BoolVar(&opts.Metadata, "metadata", false, "print changes in metadata")
	return cmd
}

// diffChangeJSON is one changed path of `diff --json`.
type diffChangeJSON struct {
	MessageType string `json:"message_type"` // "change"
	Path        string `json:"path"`
	Modifier    string `json:"modifier"`
}

// diffStat counts what one side of a diff has that the other has not.
type diffStat struct {
	Files     int    `json:"files"`
	Dirs      int    `json:"dirs"`
	Others    int    `json:"others"`
	DataBlobs int    `json:"data_blobs"`
	TreeBlobs int    `json:"tree_blobs"`
	Bytes     uint64 `json:"bytes"`
}

func (s *diffStat) add(n *tree.Node) {
	switch n.Type {
	case tree.TypeFile:
		s.Files++
	case tree.TypeDir:
		s.Dirs++
	default:
		s.Others++
	}
}

// diffStatsJSON is the closing message of `diff --json`.
type diffStatsJSON struct {
	MessageType    string   `json:"message_type"` // "statistics"
	SourceSnapshot string   `json:"source_snapshot"`
	TargetSnapshot string   `json:"target_snapshot"`
	ChangedFiles   int      `json:"changed_files"`
	Added          diffStat `json:"added"`
	Removed        diffStat `json:"removed"`
}

type blobSet map[blob.Handle]struct{}

// addNodeBlobs records what a node references directly: a file's data
// blobs or a directory's tree (not the trees below it).
func (s blobSet) addNodeBlobs(n *tree.Node) {
	if n == nil {
		return
	}
	switch n.Type {
	case tree.TypeFile:
		for _, id := range n.Content {
			s[blob.Handle{ID: id, Type: blob.DataBlob}] = struct{}{}
		}
	case tree.TypeDir:
		if n.Subtree != nil {
			s[blob.Handle{ID: *n.Subtree, Type: blob.TreeBlob}] = struct{}{}
		}
	}
}

// differ compares two trees like restic's diff.
type differ struct {
	r        *repo.Repository
	metadata bool
	change   func(path, modifier string)
	warn     func(format string, args ...any)
	stats    diffStatsJSON
	// Blobs referenced before, after, and in subtrees both sides share.
	before, after, common blobSet
}

func runDiff(ctx context.Context, a *app, opts diffOptions, args []string) error {
	if len(args) != 2 {
		return errors.New("specify two snapshot IDs")
	}
	p := a.printer()
	ctx, r, done, err := a.openLocked(ctx, false, true)
	if err != nil {
		return err
	}
	defer done()
	sn1, sub1, err := r.FindSnapshot(ctx, args[0], nil)
	if err != nil {
		return err
	}
	sn2, sub2, err := r.FindSnapshot(ctx, args[1], nil)
	if err != nil {
		return err
	}
	if !a.gopts.JSON {
		p.P("comparing snapshot %v to %v:\n\n", sn1.ID().Str(), sn2.ID().Str())
	}
	if err := r.LoadIndex(ctx, nil); err != nil {
		return err
	}
	if sn1.Tree == nil {
		return fmt.Errorf("snapshot %v has nil tree", sn1.ID().Str())
	}
	if sn2.Tree == nil {
		return fmt.Errorf("snapshot %v has nil tree", sn2.ID().Str())
	}
	tree1, err := findTreeDirectory(ctx, r, *sn1.Tree, sub1)
	if err != nil {
		return err
	}
	tree2, err := findTreeDirectory(ctx, r, *sn2.Tree, sub2)
	if err != nil {
		return err
	}

	d := &differ{
		r: r, metadata: opts.Metadata, warn: p.E,
		before: blobSet{}, after: blobSet{}, common: blobSet{},
		stats: diffStatsJSON{MessageType: "statistics", SourceSnapshot: args[0], TargetSnapshot: args[1]},
	}
	switch {
	case a.gopts.Quiet:
		d.change = func(string, string) {}
	case a.gopts.JSON:
		d.change = func(path, mod string) {
			if err := a.term.printJSON(diffChangeJSON{MessageType: "change", Path: path, Modifier: mod}); err != nil {
				p.E("JSON encode failed: %v", err)
			}
		}
	default:
		d.change = func(path, mod string) { p.S("%-5s%v", mod, path) }
	}
	d.before[blob.Handle{ID: tree1, Type: blob.TreeBlob}] = struct{}{}
	d.after[blob.Handle{ID: tree2, Type: blob.TreeBlob}] = struct{}{}
	if err := d.diffTree(ctx, "/", tree1, tree2); err != nil {
		return err
	}
	d.countBlobs(d.before, d.after, &d.stats.Removed)
	d.countBlobs(d.after, d.before, &d.stats.Added)

	if a.gopts.JSON {
		if err := a.term.printJSON(d.stats); err != nil {
			p.E("JSON encode failed: %v", err)
		}
		return nil
	}
	s := d.stats
	p.S("")
	p.S("Files:       %5d new, %5d removed, %5d changed", s.Added.Files, s.Removed.Files, s.ChangedFiles)
	p.S("Dirs:        %5d new, %5d removed", s.Added.Dirs, s.Removed.Dirs)
	p.S("Others:      %5d new, %5d removed", s.Added.Others, s.Removed.Others)
	p.S("Data Blobs:  %5d new, %5d removed", s.Added.DataBlobs, s.Removed.DataBlobs)
	p.S("Tree Blobs:  %5d new, %5d removed", s.Added.TreeBlobs, s.Removed.TreeBlobs)
	p.S("  Added:   %-5s", formatBytes(s.Added.Bytes))
	p.S("  Removed: %-5s", formatBytes(s.Removed.Bytes))
	return nil
}

// countBlobs counts the blobs of mine that are neither in other nor in a
// subtree both sides share, with their plaintext sizes.
func (d *differ) countBlobs(mine, other blobSet, s *diffStat) {
	for h := range mine {
		if _, ok := other[h]; ok {
			continue
		}
		if _, ok := d.common[h]; ok {
			continue
		}
		switch h.Type {
		case blob.DataBlob:
			s.DataBlobs++
		case blob.TreeBlob:
			s.TreeBlobs++
		}
		size, ok := d.r.Index().PlaintextLength(h)
		if !ok {
			d.warn("unable to find blob size for %v", h)
			continue
		}
		s.Bytes += uint64(size)
	}
}

// nested reports an error from below the top level the way restic does:
// printed, and the comparison goes on (only cancellation stops it).
func (d *differ) nested(err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		d.warn("error: %v", err)
	}
}

func (d *differ) diffTree(ctx context.Context, prefix string, id1, id2 blob.ID) error {
	t1, err := d.r.LoadTree(ctx, id1)
	if err != nil {
		return err
	}
	t2, err := d.r.LoadTree(ctx, id2)
	if err != nil {
		return err
	}
	nodes1, nodes2 := t1.Nodes(), t2.Nodes()
	for len(nodes1) > 0 || len(nodes2) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Merge the two sorted lists by name.
		var n1, n2 *tree.Node
		switch {
		case len(nodes2) == 0 || (len(nodes1) > 0 && nodes1[0].Name < nodes2[0].Name):
			n1, nodes1 = nodes1[0], nodes1[1:]
		case len(nodes1) == 0 || nodes1[0].Name > nodes2[0].Name:
			n2, nodes2 = nodes2[0], nodes2[1:]
		default:
			n1, nodes1 = nodes1[0], nodes1[1:]
			n2, nodes2 = nodes2[0], nodes2[1:]
		}
		d.before.addNodeBlobs(n1)
		d.after.addNodeBlobs(n2)
		switch {
		case n1 != nil && n2 != nil:
			d.compareNodes(ctx, prefix, n1, n2)
		case n1 != nil:
			d.oneSide(ctx, "-", prefix, n1, &d.stats.Removed, d.before)
		default:
			d.oneSide(ctx, "+", prefix, n2, &d.stats.Added, d.after)
		}
	}
	return ctx.Err()
}

func (d *differ) compareNodes(ctx context.Context, prefix string, n1, n2 *tree.Node) {
	name := path.Join(prefix, n1.Name)
	mod := ""
	if n1.Type != n2.Type {
		mod += "T"
	}
	if n2.Type == tree.TypeDir {
		name += "/"
	}
	if n1.Type == tree.TypeFile && n2.Type == tree.TypeFile && !sameContent(n1.Content, n2.Content) {
		mod += "M"
		d.stats.ChangedFiles++
		// Everything but the content the same: likely bitrot (unless
		// the backup ignored inodes or ctimes).
		c1, c2 := *n1, *n2
		c1.Content, c2.Content = nil, nil
		if resticEquals(&c1, &c2) {
			mod += "?"
		}
	} else if d.metadata && !resticEquals(n1, n2) {
		mod += "U"
	}
	if mod != "" {
		d.change(name, mod)
	}
	if n1.Type != tree.TypeDir || n2.Type != tree.TypeDir || n1.Subtree == nil || n2.Subtree == nil {
		return
	}
	if *n1.Subtree == *n2.Subtree {
		d.nested(d.collect(ctx, d.common, *n1.Subtree))
		return
	}
	d.nested(d.diffTree(ctx, name, *n1.Subtree, *n2.Subtree))
}

// oneSide reports a node only one snapshot has, and everything below it.
func (d *differ) oneSide(ctx context.Context, mod, prefix string, n *tree.Node, s *diffStat, blobs blobSet) {
	name := path.Join(prefix, n.Name)
	if n.Type == tree.TypeDir {
		name += "/"
	}
	d.change(name, mod)
	s.add(n)
	if n.Type == tree.TypeDir && n.Subtree != nil {
		d.nested(d.printDir(ctx, mod, s, blobs, name, *n.Subtree))
	}
}

func (d *differ) printDir(ctx context.Context, mod string, s *diffStat, blobs blobSet, prefix string, id blob.ID) error {
	return d.below(ctx, prefix, id, func(name string, n *tree.Node) {
		d.change(name, mod)
		s.add(n)
		blobs.addNodeBlobs(n)
	})
}

// collect records every blob below tree id.
func (d *differ) collect(ctx context.Context, blobs blobSet, id blob.ID) error {
	return d.below(ctx, "/", id, func(_ string, n *tree.Node) { blobs.addNodeBlobs(n) })
}

// below calls fn for every node below tree id, depth first, with its path
// (a directory's ends in "/"). Like restic, it reports a subtree that
// cannot be loaded and goes on; it returns only its own tree's error.
func (d *differ) below(ctx context.Context, prefix string, id blob.ID, fn func(name string, n *tree.Node)) error {
	t, err := d.r.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	for _, n := range t.Nodes() {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := path.Join(prefix, n.Name)
		if n.Type == tree.TypeDir {
			name += "/"
		}
		fn(name, n)
		if n.Type == tree.TypeDir && n.Subtree != nil {
			d.nested(d.below(ctx, name, *n.Subtree, fn))
		}
	}
	return ctx.Err()
}

// sameContent compares content lists like reflect.DeepEqual does: a nil
// list differs from an empty one.
func sameContent(a, b []blob.ID) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// resticEquals is restic's Node.Equals: like tree.Node.Equal, but times
// compare as instants whatever their zone, and extended attributes as a
// set of names with values whatever their order.
func resticEquals(a, b *tree.Node) bool {
	if a.Name != b.Name || a.Type != b.Type || a.Mode != b.Mode ||
		!a.ModTime.Equal(b.ModTime) || !a.AccessTime.Equal(b.AccessTime) || !a.ChangeTime.Equal(b.ChangeTime) ||
		a.UID != b.UID || a.GID != b.GID || a.User != b.User || a.Group != b.Group ||
		a.Inode != b.Inode || a.DeviceID != b.DeviceID || a.Size != b.Size || a.Links != b.Links ||
		a.LinkTarget != b.LinkTarget || a.Device != b.Device || a.Error != b.Error {
		return false
	}
	if !sameContent(a.Content, b.Content) || !sameXattrs(a.ExtendedAttributes, b.ExtendedAttributes) {
		return false
	}
	if len(a.GenericAttributes) != len(b.GenericAttributes) {
		return false
	}
	for k, v := range a.GenericAttributes {
		w, ok := b.GenericAttributes[k]
		if !ok || string(v) != string(w) {
			return false
		}
	}
	if (a.Subtree == nil) != (b.Subtree == nil) {
		return false
	}
	return a.Subtree == nil || *a.Subtree == *b.Subtree
}

// sameXattrs reports whether two lists hold the same names with the same
// values, in any order (a name listed twice keeps its last value).
func sameXattrs(a, b []tree.ExtendedAttribute) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 {
		return true
	}
	values := make(map[string][]byte, len(a))
	found := make(map[string]bool, len(a))
	for _, x := range a {
		values[x.Name] = x.Value
	}
	for _, y := range b {
		v, ok := values[y.Name]
		if !ok || string(v) != string(y.Value) {
			return false
		}
		found[y.Name] = true
	}
	return len(found) == len(values)
}
