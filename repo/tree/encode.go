package tree

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/repo/blob"
)

// ErrNotOrdered is returned (wrapped) by [Builder.Add] and [Encode] when a
// node's name is not strictly greater than the previous one. restic looks
// names up by binary search, so a tree out of order, or with a name twice,
// silently breaks lookups and makes `restic rewrite` fail.
var ErrNotOrdered = errors.New("nodes are not ordered or duplicate")

const (
	treeOpen  = `{"nodes":[`
	treeClose = "]}\n"
	// maxTypicalNode is more than a node restic writes for a plain file
	// with a few content blobs takes; the Builder keeps this much room free.
	maxTypicalNode = 1024
)

// emptyTreeID is the ID of `{"nodes":[]}` plus newline, the same in every
// repository.
var emptyTreeID = blob.Hash([]byte(treeOpen + treeClose))

// EmptyID returns the ID of the tree blob of an empty directory,
// ac08ce34ba4f8123618661bef2425f7028ffb9ac740578a3ee88684d2523fee8.
func EmptyID() blob.ID { return emptyTreeID }

// ID returns the ID of an encoded tree blob: the SHA-256 of its bytes.
func ID(buf []byte) blob.ID { return blob.Hash(buf) }

// Encode returns the tree blob listing nodes, which must be sorted by Name
// (raw bytes, Go string order) without duplicates.
func Encode(nodes []*Node) ([]byte, error) {
	var b Builder
	for i, n := range nodes {
		if err := b.Add(n); err != nil {
			return nil, err
		}
		if i == 0 && len(nodes) > 1 {
			// Nodes of one directory are similar in size: reserve room
			// for the rest at once, with a little slack.
			per := len(b.buf) - len(treeOpen) + 1
			b.buf = slices.Grow(b.buf, per*(len(nodes)-1)+per*len(nodes)/8+len(treeClose))
		}
	}
	return b.Finish(), nil
}

// Builder encodes a tree blob one node at a time, so that a directory's nodes
// need not all be kept. The zero value is ready to use; a Builder may be reused
// after Finish. It is not safe for concurrent use.
type Builder struct {
	buf     []byte
	last    string
	count   int
	started bool
	// scratch holds a name's strconv.Quote form before it is JSON-escaped.
	scratch []byte
	// The last time formatted and its bytes: mtime and atime are usually
	// the same value, so one of them is a copy.
	lastTime    time.Time
	lastTimeEnc []byte // nil until a time was formatted
}

// Add appends n. Its name must be non-empty and strictly greater than the
// previous node's name (Go string order of the raw bytes); otherwise Add
// returns an error wrapping ErrNotOrdered. If n cannot be encoded (a time whose
// year cannot be clamped or whose zone offset is 24 hours or more, or a generic
// attribute that is not valid JSON), Add returns the error and the tree is left
// as it was before the call.
func (b *Builder) Add(n *Node) error {
	if n == nil {
		return errors.New("encode tree: nil node")
	}
	if !b.started {
		b.start()
	}
	if n.Name == "" {
		return errors.New("encode tree: node with an empty name")
	}
	if b.count > 0 && n.Name <= b.last {
		return fmt.Errorf("encode tree: node %q after %q: %w", n.Name, b.last, ErrNotOrdered)
	}
	// Grow by doubling: append's own growth for large slices is 1.25x,
	// which for a tree of 200k nodes copies the buffer dozens of times.
	if cap(b.buf)-len(b.buf) < maxTypicalNode {
		b.buf = slices.Grow(b.buf, max(len(b.buf), 4*maxTypicalNode))
	}
	mark := len(b.buf)
	if b.count > 0 {
		b.buf = append(b.buf, ',')
	}
	var err error
	b.buf, err = b.appendNode(b.buf, n)
	if err != nil {
		b.buf = b.buf[:mark]
		return fmt.Errorf("encode tree: node %q: %w", n.Name, err)
	}
	b.last = n.Name
	b.count++
	return nil
}

// Len returns the number of nodes added since the last Finish.
func (b *Builder) Len() int { return b.count }

// Finish returns the encoded tree blob, including its final newline, and
// resets the Builder. The caller owns the returned slice.
func (b *Builder) Finish() []byte {
	if !b.started {
		b.start()
	}
	out := append(b.buf, treeClose...)
	b.buf = nil
	b.started = false
	b.count = 0
	b.last = ""
	return out
}

func (b *Builder) start() {
	b.buf = append(b.buf[:0], treeOpen...)
	b.started = true
}

// appendNode writes one node object with restic's field order and omission
// rules (the order of restic's Node struct; omitempty on all fields but name,
// type, the times, uid, gid and content).
func (b *Builder) appendNode(dst []byte, n *Node) ([]byte, error) {
	var err error
	dst = append(dst, `{"name":`...)
	dst = b.appendName(dst, n.Name)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, string(n.Type))
	if n.Mode != 0 {
		dst = append(dst, `,"mode":`...)
		dst = strconv.AppendUint(dst, uint64(n.Mode), 10)
	}
	dst = append(dst, `,"mtime":`...)
	if dst, err = b.appendCachedTime(dst, n.ModTime); err != nil {
		return dst, fmt.Errorf("mtime: %w", err)
	}
	dst = append(dst, `,"atime":`...)
	if dst, err = b.appendCachedTime(dst, n.AccessTime); err != nil {
		return dst, fmt.Errorf("atime: %w", err)
	}
	dst = append(dst, `,"ctime":`...)
	if dst, err = b.appendCachedTime(dst, n.ChangeTime); err != nil {
		return dst, fmt.Errorf("ctime: %w", err)
	}
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendUint(dst, uint64(n.UID), 10)
	dst = append(dst, `,"gid":`...)
	dst = strconv.AppendUint(dst, uint64(n.GID), 10)
	if n.User != "" {
		dst = append(dst, `,"user":`...)
		dst = appendString(dst, n.User)
	}
	if n.Group != "" {
		dst = append(dst, `,"group":`...)
		dst = appendString(dst, n.Group)
	}
	dst = appendUintField(dst, `,"inode":`, n.Inode)
	dst = appendUintField(dst, `,"device_id":`, n.DeviceID)
	dst = appendUintField(dst, `,"size":`, n.Size)
	dst = appendUintField(dst, `,"links":`, n.Links)
	if n.LinkTarget != "" {
		dst = append(dst, `,"linktarget":`...)
		dst = appendString(dst, n.LinkTarget)
		if !utf8.ValidString(n.LinkTarget) {
			dst = append(dst, `,"linktarget_raw":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, []byte(n.LinkTarget))
			dst = append(dst, '"')
		}
	}
	if len(n.ExtendedAttributes) > 0 {
		dst = append(dst, `,"extended_attributes":[`...)
		for i, a := range n.ExtendedAttributes {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = appendString(dst, a.Name)
			dst = append(dst, `,"value":`...)
			dst = appendBytes(dst, a.Value)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if len(n.GenericAttributes) > 0 {
		if dst, err = appendGenericAttributes(dst, n.GenericAttributes); err != nil {
			return dst, err
		}
	}
	dst = appendUintField(dst, `,"device":`, n.Device)
	dst = append(dst, `,"content":`...)
	if n.Content == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i := range n.Content {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendID(dst, &n.Content[i])
		}
		dst = append(dst, ']')
	}
	if n.Subtree != nil {
		dst = append(dst, `,"subtree":`...)
		dst = appendID(dst, n.Subtree)
	}
	if n.Error != "" {
		dst = append(dst, `,"error":`...)
		dst = appendString(dst, n.Error)
	}
	return append(dst, '}'), nil
}

func appendUintField(dst []byte, key string, v uint64) []byte {
	if v == 0 {
		return dst
	}
	dst = append(dst, key...)
	return strconv.AppendUint(dst, v, 10)
}

func appendID(dst []byte, id *blob.ID) []byte {
	dst = append(dst, '"')
	dst = hex.AppendEncode(dst, id[:])
	return append(dst, '"')
}

// appendBytes writes a []byte the way encoding/json does: null for nil,
// otherwise a base64 (standard, padded) string.
func appendBytes(dst, v []byte) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, v)
	return append(dst, '"')
}

// appendName writes a node name: strconv.Quote without the surrounding quotes,
// then JSON-encoded. Names made only of characters that both steps leave alone
// are copied directly, which is the common case.
func (b *Builder) appendName(dst []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		if !plainName[name[i]] {
			b.scratch = strconv.AppendQuote(b.scratch[:0], name)
			q := b.scratch[1 : len(b.scratch)-1]
			return appendString(dst, q)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"')
}

// plainName marks the bytes that strconv.Quote and JSON HTML-safe escaping
// both keep as they are: printable ASCII except the quote, the backslash and
// <, >, &. (DEL is not printable, so Quote escapes it.)
var plainName = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()
