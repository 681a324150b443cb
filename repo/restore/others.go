package restore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/repo/tree"
)

// restoreOthers creates symlinks, FIFOs and devices, then the hard links
// (whose targets must exist by then), each group in parallel.
func (rs *restorer) restoreOthers(ctx context.Context) error {
	err := forEach(ctx, rs.workers, len(rs.others), noState, func(_ context.Context, _ struct{}, i int) error {
		rs.restoreOther(rs.others[i])
		return nil
	})
	if err != nil {
		return err
	}
	return forEach(ctx, rs.workers, len(rs.links), noState, func(_ context.Context, _ struct{}, i int) error {
		rs.restoreLink(rs.links[i])
		return nil
	})
}

// clearWay applies the overwrite mode to an entry in a directory that
// existed before and removes what is at its path. It reports whether the
// entry is to be made.
func (rs *restorer) clearWay(loc, p string, n *tree.Node, d *dirEntry) bool {
	if d.failed {
		rs.fail(loc, errors.New("not restored: its directory could not be created"))
		return false
	}
	if d.fresh {
		return true
	}
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true
	case err != nil:
		rs.fail(loc, err)
		return false
	case rs.opts.Overwrite == OverwriteNever,
		rs.opts.Overwrite == OverwriteIfNewer && !n.ModTime.After(fi.ModTime()):
		rs.filesSkipped.Add(1)
		return false
	}
	if rs.opts.DryRun {
		return true
	}
	// restic removes a file or an empty directory here, never more.
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		rs.fail(loc, fmt.Errorf("remove what is in the way: %w", err))
		return false
	}
	return true
}

// restoreOther creates one symlink, FIFO or device node and applies its
// metadata.
func (rs *restorer) restoreOther(o *otherEntry) {
	defer rs.opts.Progress.fileDone()
	n := o.node
	if !rs.clearWay(o.loc, o.path, n, o.dir) {
		return
	}
	if rs.opts.DryRun {
		rs.othersDone.Add(1)
		o.done = true
		return
	}
	var err error
	switch n.Type {
	case tree.TypeSymlink:
		err = unix.Symlink(n.LinkTarget, o.path)
	case tree.TypeFifo:
		err = unix.Mkfifo(o.path, 0o600)
	case tree.TypeDev:
		err = mknod(o.path, unix.S_IFBLK|0o600, n.Device)
	case tree.TypeCharDev:
		err = mknod(o.path, unix.S_IFCHR|0o600, n.Device)
	default:
		rs.fail(o.loc, fmt.Errorf("cannot restore a node of type %q", n.Type))
		return
	}
	if err != nil {
		rs.fail(o.loc, fmt.Errorf("create %s: %w", n.Type, &fs.PathError{Op: "create", Path: o.path, Err: err}))
		return
	}
	o.done = true
	rs.othersDone.Add(1)
	rs.pathMetadata(o.loc, o.path, n, !o.dir.fresh, o.dir.setgid)
}

// restoreLink makes another name for an entry restored earlier, and
// applies the node's metadata to it as restic does (the values are
// normally the same as the first name's).
func (rs *restorer) restoreLink(o *otherEntry) {
	defer rs.opts.Progress.fileDone()
	var target string
	var ok, complete bool
	if f := o.linkFile; f != nil {
		target = f.path()
		ok = f.created || f.metaOnly || f.skip
		complete = f.written || f.metaOnly || f.skip
	} else {
		target = o.linkOther.path
		ok = o.linkOther.done
		complete = ok
	}
	if !rs.clearWay(o.loc, o.path, o.node, o.dir) {
		return
	}
	if rs.opts.DryRun {
		rs.linked.Add(1)
		return
	}
	if !ok {
		rs.fail(o.loc, fmt.Errorf("hard link to %s: that entry was not restored", target))
		return
	}
	if err := unix.Linkat(unix.AT_FDCWD, target, unix.AT_FDCWD, o.path, 0); err != nil {
		rs.fail(o.loc, fmt.Errorf("hard link to %s: %w", target, &fs.PathError{Op: "link", Path: o.path, Err: err}))
		return
	}
	rs.linked.Add(1)
	if complete {
		// A file whose content failed keeps the restore's time, under every
		// name.
		rs.pathMetadata(o.loc, o.path, o.node, true, o.dir.setgid)
	}
}
