package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// makeDirs creates the target and every directory of the plan, parents
// first, one level at a time with the directories of a level in parallel.
// New directories are made 0700 (so the restore can always write into
// them) and get their real mode with the rest of their metadata at the end.
func (rs *restorer) makeDirs(ctx context.Context) error {
	root := rs.dirs[0][0]
	if err := rs.makeRoot(root); err != nil {
		return err
	}
	for _, level := range rs.dirs[1:] {
		err := forEach(ctx, rs.workers, len(level), noState, func(_ context.Context, _ struct{}, i int) error {
			if d := level[i]; d.used() {
				rs.makeDir(d)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// makeRoot creates the target directory. It is fresh when it did not exist
// or is empty, so that nothing has to be checked inside it.
func (rs *restorer) makeRoot(root *dirEntry) error {
	fi, err := os.Lstat(root.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		root.fresh = true
		if rs.opts.DryRun {
			return nil
		}
		if err := os.MkdirAll(root.path, 0o700); err != nil {
			return fmt.Errorf("restore: create target directory: %w", err)
		}
		fi, err := os.Lstat(root.path)
		if err != nil {
			return fmt.Errorf("restore: create target directory: %w", err)
		}
		root.setgid = fi.Mode()&fs.ModeSetgid != 0
		return nil
	case err != nil:
		return fmt.Errorf("restore: target directory: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		// A symlink given as the target is followed, like restic and cp.
		if fi, err = os.Stat(root.path); err != nil {
			return fmt.Errorf("restore: target directory: %w", err)
		}
	}
	if !fi.IsDir() {
		return fmt.Errorf("restore: target %s is not a directory", root.path)
	}
	root.setgid = fi.Mode()&fs.ModeSetgid != 0
	empty, err := isEmptyDir(root.path)
	if err != nil {
		return fmt.Errorf("restore: target directory: %w", err)
	}
	root.fresh = empty
	return nil
}

func isEmptyDir(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// makeDir creates one directory. Inside a fresh parent a plain mkdir does;
// elsewhere whatever is in the way (a file, a symlink) is removed first,
// and an existing directory is kept, not fresh.
func (rs *restorer) makeDir(d *dirEntry) {
	parent := d.parent
	if parent.failed {
		d.failed = true
		return
	}
	if parent.fresh {
		d.fresh, d.setgid = true, parent.setgid
		if rs.opts.DryRun {
			return
		}
		if err := unix.Mkdir(d.path, 0o700); err != nil {
			d.failed = true
			rs.fail(d.loc, fmt.Errorf("create directory: %w", &fs.PathError{Op: "mkdir", Path: d.path, Err: err}))
		}
		return
	}
	fi, err := os.Lstat(d.path)
	switch {
	case err == nil && fi.IsDir():
		d.setgid = fi.Mode()&fs.ModeSetgid != 0
		return
	case err == nil:
		if rs.opts.DryRun {
			d.fresh = true
			return
		}
		// restic removes only what is not a directory here.
		if err := os.Remove(d.path); err != nil {
			d.failed = true
			rs.fail(d.loc, fmt.Errorf("remove what is in the way of a directory: %w", err))
			return
		}
	case !errors.Is(err, fs.ErrNotExist):
		d.failed = true
		rs.fail(d.loc, fmt.Errorf("create directory: %w", err))
		return
	}
	d.fresh, d.setgid = true, parent.setgid
	if rs.opts.DryRun {
		return
	}
	if err := unix.Mkdir(d.path, 0o700); err != nil {
		d.failed = true
		rs.fail(d.loc, fmt.Errorf("create directory: %w", &fs.PathError{Op: "mkdir", Path: d.path, Err: err}))
	}
}

// finishDirs runs --delete and applies directory metadata, deepest level
// first so that a directory's times are set after everything inside it
// changed. The directories of one level are independent and done in
// parallel. The target itself keeps its own metadata, as with restic.
func (rs *restorer) finishDirs(ctx context.Context) error {
	for li := len(rs.dirs) - 1; li >= 0; li-- {
		level := rs.dirs[li]
		err := forEach(ctx, rs.workers, len(level), noState, func(_ context.Context, _ struct{}, i int) error {
			d := level[i]
			if d.failed || !d.used() {
				// The target itself is "used" when anything was restored;
				// like restic, --delete leaves it alone otherwise.
				return nil
			}
			if rs.opts.Delete && !rs.noDelete && d.loaded {
				rs.removeUnexpected(d)
			}
			if d.node == nil {
				return nil
			}
			rs.dirsDone.Add(1)
			if rs.opts.DryRun {
				return nil
			}
			rs.dirMetadata(d)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// dirMetadata applies a directory's metadata, through a descriptor where
// the directory can be opened (it is never a symlink then).
func (rs *restorer) dirMetadata(d *dirEntry) {
	fd, err := unix.Open(d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		// An existing directory the restore may not read (no privileges);
		// the path-based calls below do not follow symlinks either, except
		// chmod, which is only attempted on a directory.
		rs.pathMetadata(d.loc, d.path, d.node, !d.fresh, d.parent.setgid)
		return
	}
	m := metaOf(d.node)
	if err := rs.applyMetadata(d.loc, metaTarget{fd: fd, path: d.path}, &m, !d.fresh, d.parent.setgid); err != nil {
		rs.fail(d.loc, err)
	}
	if err := unix.Close(fd); err != nil {
		rs.fail(d.loc, fmt.Errorf("close directory %s: %w", d.path, err))
	}
}

// removeUnexpected deletes what is in the directory but not in its tree
// (restic's --delete), subject to the patterns.
func (rs *restorer) removeUnexpected(d *dirEntry) {
	f, err := os.Open(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		rs.fail(d.loc, fmt.Errorf("delete: read directory: %w", err))
		return
	}
	names, err := f.Readdirnames(-1)
	_ = f.Close()
	if err != nil {
		rs.fail(d.loc, fmt.Errorf("delete: read directory: %w", err))
		return
	}
	keep := make(map[string]bool, len(d.names))
	for _, n := range d.names {
		keep[n] = true
	}
	for _, name := range names {
		if keep[name] {
			continue
		}
		loc := joinLoc(d.loc, name)
		if selected, _ := rs.sel.selects(loc, false); !selected {
			continue
		}
		if !rs.opts.DryRun {
			if err := os.RemoveAll(d.path + "/" + name); err != nil {
				rs.fail(loc, fmt.Errorf("delete: %w", err))
				continue
			}
		}
		rs.deleted.Add(1)
	}
}
