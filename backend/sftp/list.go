package sftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"github.com/cairn-backup/cairn/backend"
	"golang.org/x/sync/errgroup"
)

// List calls fn for every file of type t with a valid name (temporary
// files are skipped). Packs are found in every subdirectory of data/,
// whose listings are fetched several at a time. A missing directory lists
// nothing. Each directory is read whole before fn sees any of its
// entries, so a listing interrupted by a dropped connection is resumed on
// a new one without reporting a file twice.
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if t == backend.InvalidFile || t > backend.PackFile {
		return fmt.Errorf("sftp: list in %s: invalid file type %d", b.Location(), uint8(t))
	}
	if t == backend.ConfigFile {
		return nil
	}
	dir := path.Join(b.root, t.Dir())
	entries, err := b.readDir(ctx, dir)
	if err != nil {
		return fmt.Errorf("sftp: list %s on %s: %w", dir, b.host(), err)
	}
	if t != backend.PackFile {
		return report(ctx, entries, fn)
	}

	var subdirs []string
	for _, e := range entries {
		if e.IsDir() {
			subdirs = append(subdirs, path.Join(dir, e.Name()))
		}
	}
	// Workers read directories ahead while this goroutine hands the
	// entries to fn, as the contract wants. The workers use their own
	// context so that an error from fn stops them without tearing down
	// connections that other operations share.
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	workers := int(b.cfg.Connections)
	results := make(chan []os.FileInfo, workers)
	errc := make(chan error, 1)
	go func() {
		g := new(errgroup.Group)
		g.SetLimit(workers)
		for _, sub := range subdirs {
			if stop.Err() != nil {
				break
			}
			g.Go(func() error {
				if stop.Err() != nil {
					return nil
				}
				entries, err := b.readDir(ctx, sub)
				if err != nil {
					cancel()
					return fmt.Errorf("sftp: list %s on %s: %w", sub, b.host(), err)
				}
				select {
				case results <- entries:
				case <-stop.Done():
				}
				return nil
			})
		}
		err := g.Wait()
		close(results)
		errc <- err
	}()
	var fnErr error
	for entries := range results {
		if fnErr != nil || stop.Err() != nil {
			continue // drain, so the workers can finish
		}
		if err := report(ctx, entries, fn); err != nil {
			fnErr = err
			cancel()
		}
	}
	return errors.Join(fnErr, <-errc)
}

// report calls fn for the regular files with valid names among entries.
func report(ctx context.Context, entries []os.FileInfo, fn func(backend.FileInfo) error) error {
	for _, e := range entries {
		if !e.Mode().IsRegular() || !backend.IsValidName(e.Name()) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(backend.FileInfo{Name: e.Name(), Size: e.Size()}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// readDir lists dir; a missing directory has no entries.
func (b *Backend) readDir(ctx context.Context, dir string) ([]os.FileInfo, error) {
	var entries []os.FileInfo
	err := b.pool.do(ctx, func(c *conn, _ bool) error {
		var err error
		entries, err = c.sftp.ReadDir(dir)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}
