// Package blob holds the identifiers shared by every layer of a repository:
// the 32-byte ID that names blobs and repository files, the blob type, and the
// handle (type + ID) under which the index finds a blob.
package blob

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// IDSize is the length of an ID in bytes (a SHA-256 digest).
const IDSize = sha256.Size

// ID names a blob (SHA-256 of its uncompressed plaintext) or a repository
// file (SHA-256 of its stored bytes). It is written as 64 lowercase hex
// characters in file names and JSON.
type ID [IDSize]byte

// Hash returns the ID of data.
func Hash(data []byte) ID { return sha256.Sum256(data) }

// NewRandomID returns a random ID, as used for a repository's config id.
func NewRandomID() ID {
	var id ID
	if _, err := rand.Read(id[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // cannot happen since Go 1.24
	}
	return id
}

// ParseID parses 64 hex characters. Uppercase is accepted on input, but IDs are
// always written in lowercase.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("invalid ID %q: want %d hex characters, got %d", truncate(s), 2*IDSize, len(s))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid ID %q: %w", truncate(s), err)
	}
	return id, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// String returns the 64-character lowercase hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Str returns the 8-character short form restic prints.
func (id ID) Str() string { return hex.EncodeToString(id[:4]) }

// Compare orders IDs by their bytes (the order of their hex forms): -1,
// 0 or +1 like bytes.Compare. blob.ID.Compare suits slices.SortFunc.
func (id ID) Compare(other ID) int { return bytes.Compare(id[:], other[:]) }

// IsNull reports whether id is all zero (the "null ID" that restic check flags).
func (id ID) IsNull() bool { return id == ID{} }

// MarshalJSON writes the ID as a lowercase hex string.
func (id ID) MarshalJSON() ([]byte, error) {
	buf := make([]byte, 2*IDSize+2)
	buf[0] = '"'
	hex.Encode(buf[1:], id[:])
	buf[len(buf)-1] = '"'
	return buf, nil
}

// UnmarshalJSON reads a hex string.
func (id *ID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decode ID: %w", err)
	}
	p, err := ParseID(s)
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// Type is the kind of a blob: file content or a directory listing.
type Type uint8

// The blob types. The zero value is invalid so that a forgotten type is caught.
const (
	InvalidBlob Type = iota
	DataBlob
	TreeBlob
)

// String returns "data" or "tree", the names used in index files.
func (t Type) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("invalid(%d)", uint8(t))
}

// MarshalJSON writes "data" or "tree".
func (t Type) MarshalJSON() ([]byte, error) {
	switch t {
	case DataBlob:
		return []byte(`"data"`), nil
	case TreeBlob:
		return []byte(`"tree"`), nil
	}
	return nil, fmt.Errorf("invalid blob type %d", uint8(t))
}

// UnmarshalJSON accepts exactly "data" or "tree".
func (t *Type) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"data"`:
		*t = DataBlob
	case `"tree"`:
		*t = TreeBlob
	default:
		return fmt.Errorf("invalid blob type %s", truncate(string(b)))
	}
	return nil
}

// Handle identifies a blob: the index keys on type and ID together, so a tree
// stored as a data blob is a different blob.
type Handle struct {
	ID   ID
	Type Type
}

func (h Handle) String() string { return fmt.Sprintf("<%s/%s>", h.Type, h.ID.Str()) }
