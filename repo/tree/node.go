package tree

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"time"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/repo/blob"
)

// Type is the kind of a node, stored as the node's "type" string. Decoding
// keeps any string, because restic does too (and `restic check` reports the
// unknown ones).
type Type string

// The node types restic knows. Sockets are never stored by `restic backup`, but
// the type exists.
const (
	TypeFile      Type = "file"
	TypeDir       Type = "dir"
	TypeSymlink   Type = "symlink"
	TypeDev       Type = "dev" // block device
	TypeCharDev   Type = "chardev"
	TypeFifo      Type = "fifo"
	TypeSocket    Type = "socket"
	TypeIrregular Type = "irregular"
)

// ExtendedAttribute is one extended attribute (xattr) of a node.
type ExtendedAttribute struct {
	Name string
	// Value is written in base64. A nil Value is written as null and an empty
	// non-nil one as "", like restic (restic backup writes "" for an empty
	// value).
	Value []byte
}

// Node is one entry of a directory, with every field restic 0.19.1 stores.
// Zero fields are left out of the encoding where restic leaves them out; the
// times, uid, gid and content are always written.
type Node struct {
	// Name is the raw entry name (any bytes except that it must not be empty).
	// It is quoted with strconv.Quote only in the encoded form.
	Name string
	Type Type
	// Mode is Go's fs.FileMode as restic builds it: permission bits, the type
	// bits, setuid, setgid and sticky (a directory 0755 is fs.ModeDir|0o755).
	// It is written as the number it is; restic never sets the other bits
	// (fs.ModeAppend, ModeTemporary, ...), so callers mask them off.
	Mode fs.FileMode

	// The times are written in their own Location, so the caller chooses the
	// zone; restic uses its process's local zone, and a tree only deduplicates
	// against restic's when the zone (offset) matches. UTC is written as "Z".
	// Years outside 0..9999 are moved into range by whole years, as restic
	// does. restic sets AccessTime = ModTime unless --with-atime.
	ModTime    time.Time
	AccessTime time.Time
	ChangeTime time.Time

	UID   uint32
	GID   uint32
	User  string // empty when the uid has no name
	Group string

	Inode    uint64
	DeviceID uint64 // st_dev; restic 0.19.1 writes it for every node type
	Size     uint64 // files only
	Links    uint64 // st_nlink; restic sets it for file, symlink, dev and chardev

	// LinkTarget is the raw symlink target. When it is not valid UTF-8 the
	// encoding carries the exact bytes in linktarget_raw as well (see
	// [Node.LinkTargetRaw]); decoding restores them here.
	LinkTarget string

	// ExtendedAttributes are kept in the order given (restic uses listxattr
	// order and does not sort them).
	ExtendedAttributes []ExtendedAttribute
	// GenericAttributes holds OS-specific values (restic writes them on
	// Windows only), each a JSON value. They are written with sorted keys and
	// re-compacted the way encoding/json writes a json.RawMessage.
	GenericAttributes map[string]json.RawMessage

	Device uint64 // dev and chardev: the raw st_rdev

	// Content lists the data blobs of a file in order. nil is written as null
	// and an empty non-nil slice as []: a file must have a non-nil Content
	// (empty for an empty file; restic check reports a file with null
	// content), every other type nil.
	Content []blob.ID
	// Subtree is the ID of a directory's tree blob; nil for other types.
	Subtree *blob.ID

	// Error exists in restic's node but restic 0.19.1 never sets it. It is
	// kept when decoded so that re-encoding loses nothing.
	Error string
}

// LinkTargetRaw returns what the encoding stores as linktarget_raw: the raw
// target bytes when LinkTarget is not valid UTF-8, else nil. restic decides
// this with utf8.ValidString at encoding time; the JSON "linktarget" then holds
// the lossy form with U+FFFD for the invalid bytes.
func (n *Node) LinkTargetRaw() []byte {
	if utf8.ValidString(n.LinkTarget) {
		return nil
	}
	return []byte(n.LinkTarget)
}

// Equal reports whether n and o have the same value in every field in a way
// that guarantees the same encoding, so that a pipeline comparing a new node
// with the one in the parent tree may reuse the parent's subtree without
// encoding anything. It is stricter than restic's Node.Equals: times must be the
// same instant and the same zone offset, extended attributes the same in the
// same order, and nil and empty slices count as different where the encoding
// differs (Content, attribute values). Two nil nodes are equal.
func (n *Node) Equal(o *Node) bool {
	if n == nil || o == nil {
		return n == o
	}
	if n.Name != o.Name || n.Type != o.Type || n.Mode != o.Mode ||
		n.UID != o.UID || n.GID != o.GID || n.User != o.User || n.Group != o.Group ||
		n.Inode != o.Inode || n.DeviceID != o.DeviceID || n.Size != o.Size ||
		n.Links != o.Links || n.LinkTarget != o.LinkTarget || n.Device != o.Device ||
		n.Error != o.Error {
		return false
	}
	if !sameTime(n.ModTime, o.ModTime) || !sameTime(n.AccessTime, o.AccessTime) ||
		!sameTime(n.ChangeTime, o.ChangeTime) {
		return false
	}
	if (n.Content == nil) != (o.Content == nil) || len(n.Content) != len(o.Content) {
		return false
	}
	for i := range n.Content {
		if n.Content[i] != o.Content[i] {
			return false
		}
	}
	if (n.Subtree == nil) != (o.Subtree == nil) || (n.Subtree != nil && *n.Subtree != *o.Subtree) {
		return false
	}
	if len(n.ExtendedAttributes) != len(o.ExtendedAttributes) {
		return false
	}
	for i, a := range n.ExtendedAttributes {
		b := o.ExtendedAttributes[i]
		if a.Name != b.Name || (a.Value == nil) != (b.Value == nil) || !bytes.Equal(a.Value, b.Value) {
			return false
		}
	}
	if len(n.GenericAttributes) != len(o.GenericAttributes) {
		return false
	}
	for k, a := range n.GenericAttributes {
		b, ok := o.GenericAttributes[k]
		if !ok || (a == nil) != (b == nil) || !bytes.Equal(a, b) {
			return false
		}
	}
	return true
}

// sameTime reports whether a and b are written identically: the same instant
// in the same zone offset. Out-of-range years are clamped in the zone's
// Location, which may behave differently for two Locations with the same
// offset, so those compare by their encoding.
func sameTime(a, b time.Time) bool {
	if a == b {
		// The same representation (instant, Location, no differing
		// monotonic reading) always encodes the same. Decoded times and
		// times built with time.Unix(...).In(loc) usually get here.
		return true
	}
	if !a.Equal(b) {
		return false
	}
	_, oa := a.Zone()
	_, ob := b.Zone()
	if oa != ob {
		return false
	}
	if sec := a.Unix(); sec > unixYear0+2*86400 && sec < unixYear10000-2*86400 {
		return true // the year is in 0..9999 in every zone
	}
	ea, erra := appendTime(nil, a)
	eb, errb := appendTime(nil, b)
	return erra == nil && errb == nil && bytes.Equal(ea, eb)
}
