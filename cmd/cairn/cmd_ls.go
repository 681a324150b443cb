package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

type lsOptions struct {
	filter        snapshotFilterFlags
	Long          bool
	Recursive     bool
	HumanReadable bool
	Sort          string
	Reverse       bool
}

func newLsCommand(a *app) *cobra.Command {
	var opts lsOptions
	cmd := &cobra.Command{
		Use:   "ls [flags] snapshotID [dir...]",
		Short: "List files in a snapshot",
		Long: `
The "ls" command lists files and directories in a snapshot.

The special snapshot ID "latest" can be used to list files and directories of
the latest snapshot in the repository; --host, --path and --tag select which.
"snapshotID:subfolder" lists the tree below subfolder.

Further arguments are absolute directory paths inside the snapshot: only the
entries directly inside them are listed, or everything below them with
--recursive. Without such arguments everything is listed.

` + exitStatusHelp,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runLs(c.Context(), a, opts, args)
		},
	}
	f := cmd.Flags()
	opts.filter.add(f, true)
	f.BoolVarP(&opts.Long, "long", "l", false, "use a long listing format showing size and mode")
	f.BoolVar(&opts.Recursive, "recursive", false, "include files in subfolders of the listed directories")
	f.BoolVar(&opts.HumanReadable, "human-readable", false, "print sizes in human readable format")
	f.StringVarP(&opts.Sort, "sort", "s", "name", "sort output by (name|size|time=mtime|atime|ctime|extension)")
	f.BoolVar(&opts.Reverse, "reverse", false, "reverse sorted output")
	return cmd
}

// lsSnapshotJSON is the first line of `ls --json`.
type lsSnapshotJSON struct {
	*repo.Snapshot
	ID          blob.ID `json:"id"`
	ShortID     string  `json:"short_id"`
	MessageType string  `json:"message_type"` // "snapshot"
	StructType  string  `json:"struct_type"`  // "snapshot"
}

// lsNodeJSON is one node line of `ls --json`, shaped like restic's.
type lsNodeJSON struct {
	Name        string      `json:"name"`
	Type        string      `json:"type"`
	Path        string      `json:"path"`
	UID         uint32      `json:"uid"`
	GID         uint32      `json:"gid"`
	Size        *uint64     `json:"size,omitempty"`
	Mode        fs.FileMode `json:"mode,omitempty"`
	Permissions string      `json:"permissions,omitempty"`
	ModTime     time.Time   `json:"mtime"`
	AccessTime  time.Time   `json:"atime"`
	ChangeTime  time.Time   `json:"ctime"`
	Inode       uint64      `json:"inode,omitempty"`
	MessageType string      `json:"message_type"` // "node"
	StructType  string      `json:"struct_type"`  // "node"
}

type lsEntry struct {
	path string
	node *tree.Node
}

func runLs(ctx context.Context, a *app, opts lsOptions, args []string) error {
	if len(args) == 0 {
		return errNoSnapshotID
	}
	sortBy, err := lsComparator(opts.Sort)
	if err != nil {
		return err
	}
	dirs := args[1:]
	for _, d := range dirs {
		if !strings.HasPrefix(d, "/") {
			return errors.New("all path filters must be absolute, starting with a forward slash '/'")
		}
	}
	ctx, r, done, err := a.openLocked(ctx, false, true)
	if err != nil {
		return err
	}
	defer done()
	if err := r.LoadIndex(ctx, nil); err != nil {
		return err
	}
	sn, sub, err := findSnapshot(ctx, r, args[0], &opts.filter)
	if err != nil {
		return err
	}
	root, err := findTreeDirectory(ctx, r, *sn.Tree, sub)
	if err != nil {
		return err
	}
	shown := *sn
	shown.Tree = &root

	p := a.printer()
	if a.gopts.JSON {
		if err := a.term.printJSON(lsSnapshotJSON{Snapshot: &shown, ID: sn.ID(), ShortID: sn.ID().Str(), MessageType: "snapshot", StructType: "snapshot"}); err != nil {
			return err
		}
	} else {
		p.P("%v filtered by %v:", sn, dirs)
	}

	var collected []lsEntry
	emit := func(nodePath string, n *tree.Node) error {
		if sortBy != nil || opts.Reverse {
			collected = append(collected, lsEntry{nodePath, n})
			return nil
		}
		return a.printLsNode(nodePath, n, opts)
	}
	within := func(p string) bool { // p is inside a listed directory
		if len(dirs) == 0 {
			return true
		}
		return slices.ContainsFunc(dirs, func(d string) bool { return hasPathPrefix(d, p) })
	}
	approaching := func(p string) bool { // p leads to a listed directory
		if len(dirs) == 0 {
			return true
		}
		return slices.ContainsFunc(dirs, func(d string) bool { return hasPathPrefix(p, d) })
	}
	visit := func(nodePath string, n *tree.Node) (bool, error) {
		if within(nodePath) {
			if err := emit(nodePath, n); err != nil {
				return false, err
			}
			if opts.Recursive {
				return true, nil
			}
		}
		return approaching(nodePath), nil
	}
	if err := walkTree(ctx, r, "/", root, visit); err != nil {
		return err
	}
	if sortBy != nil {
		slices.SortStableFunc(collected, sortBy)
	}
	if opts.Reverse {
		slices.Reverse(collected)
	}
	for _, e := range collected {
		if err := a.printLsNode(e.path, e.node, opts); err != nil {
			return err
		}
	}
	return nil
}

// walkTree visits every node below tree id in stored order, depth first;
// visit says whether to descend into a directory.
func walkTree(ctx context.Context, r *repo.Repository, prefix string, id blob.ID, visit func(string, *tree.Node) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		return fmt.Errorf("load tree for %s: %w", prefix, err)
	}
	for _, n := range t.Nodes() {
		p := path.Join(prefix, n.Name)
		if n.Type == "" {
			return fmt.Errorf("node type is empty for node %q", n.Name)
		}
		descend, err := visit(p, n)
		if err != nil {
			return err
		}
		if n.Type != tree.TypeDir || !descend {
			continue
		}
		if n.Subtree == nil {
			return fmt.Errorf("subtree for node %v in tree %v is nil", n.Name, p)
		}
		if err := walkTree(ctx, r, p, *n.Subtree, visit); err != nil {
			return err
		}
	}
	return nil
}

// hasPathPrefix reports whether p is base or lies below it.
func hasPathPrefix(base, p string) bool {
	base, p = path.Clean(base), path.Clean(p)
	if base == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == base || strings.HasPrefix(p, base+"/")
}

func (a *app) printLsNode(nodePath string, n *tree.Node, opts lsOptions) error {
	if a.gopts.JSON {
		out := lsNodeJSON{
			Name: n.Name, Type: string(n.Type), Path: nodePath, UID: n.UID, GID: n.GID,
			Mode: n.Mode, Permissions: n.Mode.String(),
			ModTime: n.ModTime, AccessTime: n.AccessTime, ChangeTime: n.ChangeTime,
			Inode: n.Inode, MessageType: "node", StructType: "node",
		}
		if n.Type == tree.TypeFile {
			size := n.Size
			out.Size = &size
		}
		return a.term.printJSON(out)
	}
	a.printer().S("%s", formatLsNode(nodePath, n, opts.Long, opts.HumanReadable))
	return nil
}

// formatLsNode is restic's ls line: the path, or with --long the mode,
// uid, gid, size, mtime and path (with the target of a symlink).
func formatLsNode(p string, n *tree.Node, long, human bool) string {
	if !long {
		return p
	}
	size := fmt.Sprintf("%6d", n.Size)
	if human {
		size = formatBytes(n.Size)
	}
	var mode fs.FileMode
	target := ""
	switch n.Type {
	case tree.TypeDir:
		mode = fs.ModeDir
	case tree.TypeSymlink:
		mode = fs.ModeSymlink
		target = " -> " + n.LinkTarget
	case tree.TypeDev:
		mode = fs.ModeDevice
	case tree.TypeCharDev:
		mode = fs.ModeDevice | fs.ModeCharDevice
	case tree.TypeFifo:
		mode = fs.ModeNamedPipe
	case tree.TypeSocket:
		mode = fs.ModeSocket
	}
	return fmt.Sprintf("%s %5d %5d %s %s %s%s", mode|n.Mode, n.UID, n.GID, size,
		n.ModTime.Local().Format(timeFormat), p, target)
}

// lsComparator returns the --sort order; nil keeps the tree order (name).
func lsComparator(mode string) (func(a, b lsEntry) int, error) {
	switch mode {
	case "name", "":
		return nil, nil
	case "size":
		return func(a, b lsEntry) int {
			return cmp.Or(cmp.Compare(a.node.Size, b.node.Size), cmp.Compare(a.path, b.path))
		}, nil
	case "time", "mtime":
		return func(a, b lsEntry) int {
			return cmp.Or(a.node.ModTime.Compare(b.node.ModTime), cmp.Compare(a.path, b.path))
		}, nil
	case "atime":
		return func(a, b lsEntry) int {
			return cmp.Or(a.node.AccessTime.Compare(b.node.AccessTime), cmp.Compare(a.path, b.path))
		}, nil
	case "ctime":
		return func(a, b lsEntry) int {
			return cmp.Or(a.node.ChangeTime.Compare(b.node.ChangeTime), cmp.Compare(a.path, b.path))
		}, nil
	case "extension":
		return func(a, b lsEntry) int {
			return cmp.Or(cmp.Compare(filepath.Ext(a.path), filepath.Ext(b.path)), cmp.Compare(a.path, b.path))
		}, nil
	}
	return nil, fmt.Errorf("invalid sort mode %q, must be one of (name|size|time=mtime|atime|ctime|extension)", mode)
}
