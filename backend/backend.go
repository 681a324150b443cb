// Package backend defines the storage contract that every repository location
// (local directory, SFTP, S3, REST server, memory) implements, plus small helpers
// shared by the implementations. A backend stores opaque named files; it knows
// nothing about encryption or the repository format beyond the directory layout.
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// FileType is the kind of a repository file. It selects the directory the file
// lives in.
type FileType uint8

// The repository file types.
const (
	InvalidFile FileType = iota
	ConfigFile
	KeyFile
	LockFile
	SnapshotFile
	IndexFile
	PackFile
)

// AllTypes lists every file type except the single config file, in the order
// that deleting a whole repository should use.
var AllTypes = []FileType{PackFile, IndexFile, SnapshotFile, KeyFile, LockFile}

// String returns the name restic uses for the type ("data" for packs).
func (t FileType) String() string {
	switch t {
	case ConfigFile:
		return "config"
	case KeyFile:
		return "key"
	case LockFile:
		return "lock"
	case SnapshotFile:
		return "snapshot"
	case IndexFile:
		return "index"
	case PackFile:
		return "data"
	}
	return fmt.Sprintf("invalid(%d)", uint8(t))
}

// Dir returns the directory of the type in restic's layout ("" for config).
func (t FileType) Dir() string {
	switch t {
	case KeyFile:
		return "keys"
	case LockFile:
		return "locks"
	case SnapshotFile:
		return "snapshots"
	case IndexFile:
		return "index"
	case PackFile:
		return "data"
	}
	return ""
}

// Handle names one file in a backend.
type Handle struct {
	Type FileType
	// Name is the file name: 64 lowercase hex characters, or "" for config.
	Name string
	// IsMetadata marks a pack that holds tree blobs. Backends may use it to keep
	// such packs out of archive storage classes; caches keep them locally.
	IsMetadata bool
}

// Valid reports whether h can name a file.
func (h Handle) Valid() error {
	if h.Type == InvalidFile || h.Type > PackFile {
		return fmt.Errorf("invalid file type %d", uint8(h.Type))
	}
	if h.Type == ConfigFile {
		return nil
	}
	if h.Name == "" {
		return fmt.Errorf("%s file with empty name", h.Type)
	}
	if h.Name == "." || h.Name == ".." || strings.ContainsAny(h.Name, "/\\\x00") {
		return fmt.Errorf("%s file with invalid name %q", h.Type, h.Name)
	}
	return nil
}

func (h Handle) String() string {
	if h.Type == ConfigFile {
		return "config"
	}
	name := h.Name
	if len(name) > 10 {
		name = name[:10]
	}
	return fmt.Sprintf("<%s/%s>", h.Type, name)
}

// FileInfo describes a stored file.
type FileInfo struct {
	Name string
	Size int64
}

// RewindReader is the data for Save. A backend that retries an upload calls
// Rewind and reads again.
type RewindReader interface {
	io.Reader
	// Rewind starts reading from the beginning again.
	Rewind() error
	// Length is the total number of bytes the reader yields.
	Length() int64
	// Hash returns the MD5 of the content if the producer computed it (S3 sends
	// it as Content-MD5), or nil.
	Hash() []byte
}

// Backend stores and retrieves repository files.
//
// Errors: a missing file is reported with an error for which
// errors.Is(err, fs.ErrNotExist) holds. Every error says which file and which
// location it concerns, with secrets redacted.
//
// All methods are safe for concurrent use; callers bound their own
// concurrency with Connections.
type Backend interface {
	// Location describes where the files are, with any password redacted.
	Location() string

	// Connections is the number of operations the backend serves well at once.
	Connections() uint

	// Save stores rd under h. It must be atomic: a reader never sees a partial
	// file under its final name, and a failed or cancelled Save leaves no file
	// under h. Saving an existing name is allowed only for the config file
	// (repository upgrade) and may fail otherwise.
	Save(ctx context.Context, h Handle, rd RewindReader) error

	// Load calls fn with a reader of length bytes starting at offset, or of the
	// rest of the file when length is 0. fn may be called more than once when
	// the backend retries, so it must be idempotent. When the file is shorter
	// than offset+length, Load returns an error wrapping ErrShortRead (and
	// fs.ErrNotExist is reserved for a missing file). Reading with offset
	// equal to the size and length 0 may yield nothing or ErrShortRead (an
	// HTTP range starting at the end cannot be satisfied).
	Load(ctx context.Context, h Handle, length int, offset int64, fn func(rd io.Reader) error) error

	// Stat returns the size of the file h.
	Stat(ctx context.Context, h Handle) (FileInfo, error)

	// Remove deletes h. Removing a missing file returns an error wrapping
	// fs.ErrNotExist, which callers may ignore.
	Remove(ctx context.Context, h Handle) error

	// List calls fn once for every file of type t, in no particular order, from
	// the goroutine that called List. Names that are not valid IDs (temporary
	// files) are skipped. A missing type directory lists nothing. If fn returns
	// an error, List stops and returns it.
	List(ctx context.Context, t FileType, fn func(FileInfo) error) error

	// Close releases connections. The backend must not be used afterwards.
	Close() error
}

// Creator is implemented by backends that prepare an empty location for a new
// repository (directories, bucket). Init calls it before writing the config.
type Creator interface {
	Create(ctx context.Context) error
}

// Replacer is implemented by backends whose Save can atomically replace an
// existing file (needed to rewrite config in place during an upgrade).
type Replacer interface {
	HasAtomicReplace() bool
}

// ErrShortRead means a ranged read ran past the end of a file: a permanent error.
var ErrShortRead = errors.New("file is shorter than the requested range")

// ErrNoRepository means the location holds no repository (no config file).
var ErrNoRepository = errors.New("repository does not exist")
