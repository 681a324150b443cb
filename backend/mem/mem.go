package mem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"

	"github.com/cairn-backup/cairn/backend"
)

// connections is what Connections reports. The map serves any number of
// callers, but restic's in-memory backend reports 2 and repository code
// sized by it should see the same bound in unit tests as with local storage.
const connections = 2

// maxPrealloc bounds the buffer Save allocates up front from the reader's
// Length, so a wrong Length cannot make it allocate absurdly; longer files
// grow the buffer as they are read.
const maxPrealloc = 1 << 30

// key identifies a stored file. It drops Handle.IsMetadata (a placement hint,
// not part of the name) and the config's name, so that every handle naming
// the same file finds it.
type key struct {
	t    backend.FileType
	name string
}

func keyOf(h backend.Handle) key {
	if h.Type == backend.ConfigFile {
		return key{t: h.Type}
	}
	return key{t: h.Type, name: h.Name}
}

// Backend keeps files in a map. The zero value is not usable; call New.
//
// Stored slices are never modified after Save puts them in the map: Save
// stores a private copy and replacing a file swaps the slice. Load can
// therefore hand out readers over the stored slice without holding the lock
// and without another copy, and callers cannot change stored data.
type Backend struct {
	mu    sync.RWMutex
	files map[key][]byte
}

// Compile-time checks of the capabilities the repository looks for.
var (
	_ backend.Backend  = (*Backend)(nil)
	_ backend.Creator  = (*Backend)(nil)
	_ backend.Replacer = (*Backend)(nil)
)

// New returns an empty in-memory backend.
func New() *Backend {
	return &Backend{files: make(map[key][]byte)}
}

// Location returns "mem:" followed by an address that tells two instances apart.
func (b *Backend) Location() string { return fmt.Sprintf("mem:%p", b) }

// Connections returns 2, like restic's in-memory backend.
func (b *Backend) Connections() uint { return connections }

// HasAtomicReplace reports true: Save swaps the stored slice under the lock.
func (b *Backend) HasAtomicReplace() bool { return true }

// Create prepares the backend for a new repository. There is nothing to make,
// but like the other backends it refuses a location that already holds a
// config, so a repository cannot be initialised twice.
func (b *Backend) Create(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: create: %w", err)
	}
	b.mu.RLock()
	_, ok := b.files[key{t: backend.ConfigFile}]
	b.mu.RUnlock()
	if ok {
		return errors.New("mem: create: config file already exists")
	}
	return nil
}

// checkHandle refuses handles no other backend could store either, so unit
// tests on mem catch what a real backend would reject.
func checkHandle(h backend.Handle) error {
	if err := h.Valid(); err != nil {
		return err
	}
	if h.Type == backend.ConfigFile {
		return nil
	}
	if h.Name == "." || h.Name == ".." || strings.ContainsAny(h.Name, "/\\\x00") {
		return fmt.Errorf("invalid file name %q", h.Name)
	}
	return nil
}

// Save stores a copy of everything rd yields under h, replacing an existing
// file. The reader must yield exactly rd.Length() bytes.
func (b *Backend) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	if err := checkHandle(h); err != nil {
		return fmt.Errorf("mem: save %v: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: save %v: %w", h, err)
	}
	want := rd.Length()
	if want < 0 {
		return fmt.Errorf("mem: save %v: negative length %d", h, want)
	}
	// Read one byte more than announced so that an overlong reader is caught
	// without buffering an unbounded stream.
	var buf bytes.Buffer
	if want < maxPrealloc {
		buf.Grow(int(want) + 1)
	}
	n, err := buf.ReadFrom(io.LimitReader(rd, want+1))
	if err != nil {
		return fmt.Errorf("mem: save %v: read data: %w", h, err)
	}
	if n != want {
		return fmt.Errorf("mem: save %v: reader yielded %d bytes, want %d", h, n, want)
	}
	// A cancellation that arrived while reading must not let the file appear.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: save %v: %w", h, err)
	}
	b.mu.Lock()
	b.files[keyOf(h)] = buf.Bytes()
	b.mu.Unlock()
	return nil
}

// Load calls fn with a reader of the requested range of h.
func (b *Backend) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(rd io.Reader) error) error {
	if err := checkHandle(h); err != nil {
		return fmt.Errorf("mem: load %v: %w", h, err)
	}
	if length < 0 || offset < 0 {
		return fmt.Errorf("mem: load %v: invalid range: length %d at offset %d", h, length, offset)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: load %v: %w", h, err)
	}
	b.mu.RLock()
	data, ok := b.files[keyOf(h)]
	b.mu.RUnlock()
	if !ok {
		return fmt.Errorf("mem: load %v: %w", h, fs.ErrNotExist)
	}
	size := int64(len(data))
	if offset > size || int64(length) > size-offset {
		return fmt.Errorf("mem: load %v: %d bytes at offset %d of a %d-byte file: %w",
			h, length, offset, size, backend.ErrShortRead)
	}
	end := size
	if length > 0 {
		end = offset + int64(length)
	}
	return fn(bytes.NewReader(data[offset:end]))
}

// Stat returns the size of h.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	if err := checkHandle(h); err != nil {
		return backend.FileInfo{}, fmt.Errorf("mem: stat %v: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return backend.FileInfo{}, fmt.Errorf("mem: stat %v: %w", h, err)
	}
	b.mu.RLock()
	data, ok := b.files[keyOf(h)]
	b.mu.RUnlock()
	if !ok {
		return backend.FileInfo{}, fmt.Errorf("mem: stat %v: %w", h, fs.ErrNotExist)
	}
	return backend.FileInfo{Name: keyOf(h).name, Size: int64(len(data))}, nil
}

// Remove deletes h.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if err := checkHandle(h); err != nil {
		return fmt.Errorf("mem: remove %v: %w", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: remove %v: %w", h, err)
	}
	k := keyOf(h)
	b.mu.Lock()
	_, ok := b.files[k]
	delete(b.files, k)
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("mem: remove %v: %w", h, fs.ErrNotExist)
	}
	return nil
}

// List calls fn for every file of type t whose name is a valid ID. It works
// on a snapshot taken under the lock, so fn may call back into the backend
// (for example to remove what it is shown).
func (b *Backend) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	if t == backend.InvalidFile || t > backend.PackFile {
		return fmt.Errorf("mem: list: invalid file type %d", uint8(t))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mem: list %v: %w", t, err)
	}
	var infos []backend.FileInfo
	b.mu.RLock()
	for k, data := range b.files {
		if k.t == t && backend.IsValidName(k.name) {
			infos = append(infos, backend.FileInfo{Name: k.name, Size: int64(len(data))})
		}
	}
	b.mu.RUnlock()
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("mem: list %v: %w", t, err)
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Close does nothing: the data lives as long as the Backend value.
func (b *Backend) Close() error { return nil }
