// Package sources defines what a backup reads: a Source walks a tree of
// entries (a local directory, a remote host over SFTP, a tar stream) and hands
// each one, with its metadata and a way to read its content, to a Visitor.
//
// Sources never import the repository: they know nothing about blobs, trees or
// snapshots. The backup pipeline in repo/backup turns what they report into a
// snapshot.
package sources

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"time"
)

// Type is the kind of an entry.
type Type uint8

// Entry types, matching the node types restic stores.
const (
	InvalidType Type = iota
	File
	Dir
	Symlink
	Dev     // block device
	CharDev // character device
	FIFO
	Socket // reported by sources; backups skip sockets like restic
	Irregular
)

// String returns restic's node type name.
func (t Type) String() string {
	switch t {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	case Dev:
		return "dev"
	case CharDev:
		return "chardev"
	case FIFO:
		return "fifo"
	case Socket:
		return "socket"
	case Irregular:
		return "irregular"
	}
	return "invalid"
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Entry is one file-system object as a source sees it. Fields a source cannot
// know stay zero; Info.Has says which ones it fills.
type Entry struct {
	// Path is where the entry goes in the snapshot: slash-separated components
	// from the snapshot root, without a leading slash ("srv/app/db.sqlite").
	// Components are raw bytes (any byte but '/' and NUL, not necessarily UTF-8).
	Path string
	// HostPath is where the entry lives on its host (an absolute local or
	// remote path, or the name inside a tar stream). Exclude patterns match
	// it, and errors name it.
	HostPath string
	Type     Type
	// Mode is the Go fs.FileMode: permission bits, type bits, setuid, setgid,
	// sticky.
	Mode fs.FileMode
	// Size is the byte size of a regular file as reported by the source. The
	// backup records the number of bytes it actually read.
	Size int64

	ModTime, AccessTime, ChangeTime time.Time

	UID, GID    uint32
	User, Group string // names for UID and GID, "" when unknown

	Inode    uint64
	DeviceID uint64 // st_dev of the file system holding the entry
	Links    uint64 // st_nlink
	Device   uint64 // st_rdev, for block and character devices

	LinkTarget string // symlink target, raw bytes
	Xattrs     []Xattr

	// Open returns the content of a regular file; nil for other types. See
	// Info.Streamed for when it may be called.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// Base returns the last path component.
func (e *Entry) Base() string {
	for i := len(e.Path) - 1; i >= 0; i-- {
		if e.Path[i] == '/' {
			return e.Path[i+1:]
		}
	}
	return e.Path
}

// Metadata is a set of Entry fields a source can fill.
type Metadata uint32

// Metadata flags.
const (
	HasInode Metadata = 1 << iota
	HasDeviceID
	HasLinks
	HasChangeTime
	HasAccessTime
	HasOwnerNames // User and Group
	HasXattrs
	HasSubsecondTimes
	HasDevices // block and character devices, FIFOs
)

// Info describes a source as a whole.
type Info struct {
	// Hostname is the machine the data comes from (a remote host's name, or the
	// local host); a backup's --host overrides it.
	Hostname string
	// Paths are the snapshot's paths: the absolute paths of the targets on that
	// host, in the order given.
	Paths []string
	// Has says which Entry fields the source fills; the backup uses it to pick
	// the change-detection rule (for example size+mtime+mode where there is no
	// inode or ctime).
	Has Metadata
	// Streamed is true for sources that deliver content as a single stream
	// (tar): Open may then be called only while Visit runs for that entry, and
	// the content must be read before Visit returns. Otherwise Open may be
	// called from any goroutine, concurrently, until the source is closed.
	Streamed bool
}

// Visitor receives a walk's entries.
type Visitor interface {
	// Visit is called for every entry, a directory before anything below it.
	// The entry is only valid during the call (copy what you keep). Returning
	// an error stops the walk.
	Visit(ctx context.Context, e *Entry) error
	// LeaveDir is called once after the last entry below the directory at path
	// has been visited; path "" is the snapshot root. Streamed sources may call
	// it for nothing but the root, at the end.
	LeaveDir(ctx context.Context, path string) error
}

// Excluder decides what a walk leaves out; package sources/filter builds one
// from restic's exclude options.
type Excluder interface {
	// Excluded reports whether e is left out; patterns match e.HostPath. A
	// directory left out is not read at all.
	Excluded(e *Entry) bool
	// ExcludedByContents reports whether directory dir is left out because of
	// a marker file inside it (--exclude-if-present). peek returns up to n
	// bytes from the start of the directory's child name, or an error wrapping
	// fs.ErrNotExist. Sources that cannot peek (streams) do not call it.
	ExcludedByContents(dir *Entry, peek func(name string, n int) ([]byte, error)) bool
}

// WalkOptions controls a walk.
type WalkOptions struct {
	// Exclude leaves entries out; nil keeps everything.
	Exclude Excluder
	// OneFileSystem keeps the walk on the file system of each target (where
	// the source knows device IDs).
	OneFileSystem bool
	// OnError is called for an entry that cannot be read (stat, readdir,
	// readlink, xattrs). Returning nil skips the entry (or the part of it
	// that failed) and goes on; returning an error stops the walk with it.
	// nil means every error stops the walk.
	OnError func(path string, err error) error
}

// Source is a tree of entries to back up.
type Source interface {
	// Info describes the source.
	Info() Info
	// Walk visits every entry below the source's targets: for each target the
	// directories leading to it (e.g. "srv" then "srv/app" for /srv/app), then
	// the target and everything below it. Non-streamed sources visit a
	// directory's children sorted by name (raw bytes) and call LeaveDir for
	// every directory they visited.
	Walk(ctx context.Context, opts WalkOptions, v Visitor) error
	// Close releases the source (connections, the stream).
	Close() error
}

// ErrVanished is wrapped by errors for entries that disappeared between being
// listed and being read.
var ErrVanished = errors.New("file vanished")
