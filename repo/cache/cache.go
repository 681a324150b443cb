// Package cache keeps a local copy of the repository files that almost
// every command reads: snapshots, index files and the packs that hold tree
// blobs, like restic's cache (~/.cache/restic/<repository id>/). It is a
// backend.Backend decorator: reads are served locally when possible, and
// everything else passes through.
//
// Cached files are named by the SHA-256 of their content, so a cached copy is
// checked against its name when it is stored; a copy that fails is dropped
// and read from the repository again.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cairn-backup/cairn/backend"
)

// DefaultDir returns restic's default cache base directory:
// $RESTIC_CACHE_DIR, else $XDG_CACHE_HOME/restic, else ~/.cache/restic.
func DefaultDir() (string, error) {
	if d := os.Getenv("RESTIC_CACHE_DIR"); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w", err)
	}
	return filepath.Join(base, "restic"), nil
}

// cachedirTag marks the directory for backup tools (restic's --exclude-caches).
const cachedirTag = "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by cairn.\n"

// Backend is a caching decorator.
type Backend struct {
	backend.Backend
	dir string

	mu       sync.Mutex
	inflight map[string]*sync.Mutex // serialises downloads of one pack
}

// Wrap returns be with a cache for the repository repoID under base. The
// directory is created if needed.
func Wrap(be backend.Backend, base, repoID string) (*Backend, error) {
	if !backend.IsValidName(repoID) {
		return nil, fmt.Errorf("cache: invalid repository id %q", repoID)
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("create cache directory: %w", err)
	}
	tag := filepath.Join(base, "CACHEDIR.TAG")
	if _, err := os.Stat(tag); errors.Is(err, fs.ErrNotExist) {
		_ = os.WriteFile(tag, []byte(cachedirTag), 0o600)
	}
	dir := filepath.Join(base, repoID)
	for _, sub := range []string{"snapshots", "index", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("create cache directory: %w", err)
		}
	}
	return &Backend{Backend: be, dir: dir, inflight: map[string]*sync.Mutex{}}, nil
}

// Dir is the repository's cache directory.
func (c *Backend) Dir() string { return c.dir }

// Unwrap returns the backend below the cache.
func (c *Backend) Unwrap() backend.Backend { return c.Backend }

func cacheable(h backend.Handle) bool {
	switch h.Type {
	case backend.SnapshotFile, backend.IndexFile:
		return true
	case backend.PackFile:
		return h.IsMetadata
	}
	return false
}

func (c *Backend) path(h backend.Handle) string {
	return filepath.Join(c.dir, filepath.FromSlash(backend.Path("", h)))
}

// Load serves cacheable files from the cache, downloading the whole file
// into the cache on the first access.
func (c *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	if !cacheable(h) || !backend.IsValidName(h.Name) {
		return c.Backend.Load(ctx, h, length, offset, fn)
	}
	p := c.path(h)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		if err := c.fetch(ctx, h, p); err != nil {
			// The cache is an optimisation: fall back to the repository.
			return c.Backend.Load(ctx, h, length, offset, fn)
		}
		f, err = os.Open(p)
	}
	if err != nil {
		return c.Backend.Load(ctx, h, length, offset, fn)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return c.Backend.Load(ctx, h, length, offset, fn)
	}
	if offset+int64(length) > st.Size() || (length == 0 && offset > st.Size()) {
		return fmt.Errorf("load %v from cache: %w", h, backend.ErrShortRead)
	}
	n := st.Size() - offset
	if length > 0 {
		n = int64(length)
	}
	return fn(io.NewSectionReader(f, offset, n))
}

// fetch downloads h into the cache and checks its hash.
func (c *Backend) fetch(ctx context.Context, h backend.Handle, p string) error {
	c.mu.Lock()
	m := c.inflight[h.Name]
	if m == nil {
		m = &sync.Mutex{}
		c.inflight[h.Name] = m
	}
	c.mu.Unlock()
	m.Lock()
	defer m.Unlock()
	if _, err := os.Stat(p); err == nil {
		return nil // another goroutine fetched it
	}
	// Streamed to a temporary file while hashing: a tree pack is as large
	// as any pack, and holding it in memory (several downloads at once)
	// cost prune and check tens of MiB.
	return writeAtomicFrom(p, h.Name, func(w *restartWriter) error {
		return c.Backend.Load(ctx, h, 0, 0, func(rd io.Reader) error {
			// A retrying backend calls this again after a failed
			// attempt: start over.
			if err := w.restart(); err != nil {
				return err
			}
			_, err := io.Copy(w, rd)
			return err
		})
	})
}

// writeAtomicFrom writes what fill writes to p via a temporary file,
// checking its SHA-256 against name when name is not empty.
func writeAtomicFrom(p, name string, fill func(*restartWriter) error) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	hw := sha256.New()
	if err := fill(&restartWriter{f: f, h: hw}); err != nil {
		return fail(err)
	}
	if name != "" && hex.EncodeToString(hw.Sum(nil)) != name {
		return fail(fmt.Errorf("cache %s: content does not match its name", name))
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// restartWriter writes to a file and a hash; restart empties both.
type restartWriter struct {
	f *os.File
	h hash.Hash
}

func (w *restartWriter) Write(p []byte) (int, error) {
	w.h.Write(p)
	return w.f.Write(p)
}

func (w *restartWriter) restart() error {
	w.h.Reset()
	if err := w.f.Truncate(0); err != nil {
		return err
	}
	_, err := w.f.Seek(0, io.SeekStart)
	return err
}

// Save writes through and keeps a copy of cacheable files.
func (c *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := c.Backend.Save(ctx, h, rd); err != nil {
		return err
	}
	if !cacheable(h) || !backend.IsValidName(h.Name) || rd.Length() > 256<<20 {
		return nil
	}
	if err := rd.Rewind(); err != nil {
		return nil
	}
	// Streamed: a saved tree pack is as large as any pack.
	_ = writeAtomicFrom(c.path(h), "", func(w *restartWriter) error {
		_, err := io.Copy(w, rd)
		return err
	})
	return nil
}

// Remove deletes from the repository and from the cache.
func (c *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if cacheable(h) || h.Type == backend.PackFile {
		_ = os.Remove(c.path(h))
	}
	return c.Backend.Remove(ctx, h)
}

// List passes through; while listing snapshots and index files it drops
// cached copies of files the repository no longer has (removed by another
// client's forget or prune).
func (c *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if t != backend.SnapshotFile && t != backend.IndexFile {
		return c.Backend.List(ctx, t, fn)
	}
	seen := map[string]bool{}
	err := c.Backend.List(ctx, t, func(fi backend.FileInfo) error {
		seen[fi.Name] = true
		return fn(fi)
	})
	if err != nil {
		return err
	}
	dir := filepath.Join(c.dir, t.Dir())
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if backend.IsValidName(e.Name()) && !seen[e.Name()] {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

var _ backend.Backend = (*Backend)(nil)

// HasAtomicReplace passes the capability of the wrapped backend through.
func (c *Backend) HasAtomicReplace() bool {
	r, ok := c.Backend.(backend.Replacer)
	return ok && r.HasAtomicReplace()
}
