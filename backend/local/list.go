package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cairn-backup/cairn/backend"
)

// readDirBatch bounds the directory entries held at once, so listing a
// huge data/XX directory does not load every name into memory.
const readDirBatch = 1024

// List calls fn for every file of type t with a valid name. Packs are found
// in every subdirectory of data/. Missing directories list nothing, and a
// file removed while List runs is skipped. List of the config lists nothing.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if t == backend.InvalidFile || t > backend.PackFile {
		return fmt.Errorf("local: list in %s: invalid file type %d", b.path, uint8(t))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: list %v in %s: %w", t, b.path, err)
	}
	if t == backend.ConfigFile {
		return nil
	}
	dir := filepath.Join(b.path, t.Dir())
	var err error
	if t == backend.PackFile {
		err = listSubdirs(ctx, dir, fn)
	} else {
		err = listFiles(ctx, dir, fn)
	}
	if err != nil {
		return err
	}
	// A cancellation during the last callback still means the caller gave up.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: list %s: %w", dir, err)
	}
	return nil
}

// listSubdirs lists the files of every directory in dir.
func listSubdirs(ctx context.Context, dir string, fn func(backend.FileInfo) error) error {
	return readDir(dir, func(e fs.DirEntry) error {
		sub := filepath.Join(dir, e.Name())
		if e.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(sub)
			if err != nil || !fi.IsDir() {
				return nil
			}
		} else if !e.IsDir() {
			return nil
		}
		return listFiles(ctx, sub, fn)
	})
}

// listFiles calls fn for each regular file in dir with a valid name.
func listFiles(ctx context.Context, dir string, fn func(backend.FileInfo) error) error {
	return readDir(dir, func(e fs.DirEntry) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("local: list %s: %w", dir, err)
		}
		if !backend.IsValidName(e.Name()) {
			return nil
		}
		fi, err := e.Info()
		if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			fi, err = os.Stat(filepath.Join(dir, e.Name()))
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since the directory was read
		}
		if err != nil {
			return fmt.Errorf("local: list %s: %w", dir, err)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		return fn(backend.FileInfo{Name: e.Name(), Size: fi.Size()})
	})
}

// readDir calls visit for each entry of dir, in directory order, reading
// the entries in batches. A missing dir has no entries.
func readDir(dir string, visit func(fs.DirEntry) error) error {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("local: list: %w", err)
	}
	defer func() { _ = d.Close() }()
	for {
		entries, err := d.ReadDir(readDirBatch)
		for _, e := range entries {
			if err := visit(e); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("local: list: %w", err)
		}
	}
}
