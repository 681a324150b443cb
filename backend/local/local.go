package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-backup/cairn/backend"
)

// connections is what Connections reports; restic's default for local
// repositories. Disks gain little from more parallel writers, each of which
// ends in an fsync.
const connections = 2

// Backend is a repository in a local directory. Create it with Open or
// Create; it holds no open files between calls, so Close only marks the end
// of use.
type Backend struct {
	path string
	// dirMode and fileMode are the modes of new directories and of files
	// while they are written; files end up with fileMode minus write bits.
	dirMode  fs.FileMode
	fileMode fs.FileMode
	// noPreallocate skips preallocation. Only tests set it, to make the
	// write itself (not fallocate) run into a full disk.
	noPreallocate bool
}

// Compile-time checks of the capabilities the repository looks for.
var (
	_ backend.Backend  = (*Backend)(nil)
	_ backend.Creator  = (*Backend)(nil)
	_ backend.Replacer = (*Backend)(nil)
)

// Open opens the repository directory dir. It fails if dir does not exist or
// is not a directory; a missing dir wraps backend.ErrNoRepository as well as
// fs.ErrNotExist. Whether dir holds a repository (a config) is for the
// caller to find out.
func Open(ctx context.Context, dir string) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local: open %s: %w", dir, err)
	}
	if dir == "" {
		return nil, errors.New("local: open: empty path")
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("local: open %s: %w: %w", dir, backend.ErrNoRepository, err)
	}
	if err != nil {
		return nil, fmt.Errorf("local: open %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("local: open %s: not a directory", dir)
	}
	return newBackend(dir), nil
}

// Create makes the directory layout of a new repository at dir (parents
// included) and returns the backend. It fails if dir already holds a config.
func Create(ctx context.Context, dir string) (*Backend, error) {
	if dir == "" {
		return nil, errors.New("local: create: empty path")
	}
	b := newBackend(dir)
	if err := b.Create(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// newBackend derives the modes from the config's mode like restic: a
// group-readable config means the repository is shared by a group.
func newBackend(dir string) *Backend {
	b := &Backend{path: filepath.Clean(dir), dirMode: 0o700, fileMode: 0o600}
	if fi, err := os.Stat(b.configPath()); err == nil && fi.Mode().Perm()&0o040 != 0 {
		b.dirMode |= 0o070
		b.fileMode |= 0o060
	}
	return b
}

func (b *Backend) configPath() string { return filepath.Join(b.path, "config") }

// Create makes every directory of restic's layout that is missing. It is
// idempotent and keeps existing files, but refuses a directory that already
// holds a config so that a repository is never initialised twice.
func (b *Backend) Create(ctx context.Context) error {
	if _, err := os.Lstat(b.configPath()); err == nil {
		return fmt.Errorf("local: create %s: config file already exists", b.path)
	}
	for _, d := range backend.Dirs("") {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("local: create %s: %w", b.path, err)
		}
		if err := os.MkdirAll(filepath.Join(b.path, filepath.FromSlash(d)), b.dirMode); err != nil {
			return fmt.Errorf("local: create %s: %w", b.path, err)
		}
	}
	return nil
}

// Location returns the repository directory.
func (b *Backend) Location() string { return b.path }

// Connections returns 2, restic's default for local repositories.
func (b *Backend) Connections() uint { return connections }

// HasAtomicReplace reports true: rename(2) replaces the target atomically.
func (b *Backend) HasAtomicReplace() bool { return true }

// Close does nothing: no files stay open between calls.
func (b *Backend) Close() error { return nil }

// filename returns the path of h, refusing handles that could name a file
// outside the layout.
func (b *Backend) filename(h backend.Handle) (string, error) {
	if err := h.Valid(); err != nil {
		return "", err
	}
	if h.Type != backend.ConfigFile {
		if h.Name == "." || h.Name == ".." || strings.ContainsAny(h.Name, "/\\\x00") {
			return "", fmt.Errorf("invalid file name %q", h.Name)
		}
	}
	return filepath.Join(b.path, filepath.FromSlash(backend.Path("", h))), nil
}

// Stat returns the size of h.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	name, err := b.filename(h)
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("local: stat %v in %s: %w", h, b.path, err)
	}
	if err := ctx.Err(); err != nil {
		return backend.FileInfo{}, fmt.Errorf("local: stat %s: %w", name, err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("local: %w", err)
	}
	return backend.FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// Remove deletes h.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	name, err := b.filename(h)
	if err != nil {
		return fmt.Errorf("local: remove %v in %s: %w", h, b.path, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("local: remove %s: %w", name, err)
	}
	if err := removeFile(name); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	return nil
}
