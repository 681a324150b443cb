package tree

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"time"

	"github.com/cairn-backup/cairn/repo/blob"
)

// This file is the reference: restic 0.19.1's node struct rebuilt with
// encoding/json tags. Decode falls back to it for any input the fast decoder
// does not handle, so it defines what Decode accepts; the tests encode through
// it to prove the fast encoder byte-identical.

// refNode has restic's field order, JSON keys and omitempty rules.
type refNode struct {
	Name               string                     `json:"name"`
	Type               Type                       `json:"type"`
	Mode               fs.FileMode                `json:"mode,omitempty"`
	ModTime            time.Time                  `json:"mtime,omitempty"`
	AccessTime         time.Time                  `json:"atime,omitempty"`
	ChangeTime         time.Time                  `json:"ctime,omitempty"`
	UID                uint32                     `json:"uid"`
	GID                uint32                     `json:"gid"`
	User               string                     `json:"user,omitempty"`
	Group              string                     `json:"group,omitempty"`
	Inode              uint64                     `json:"inode,omitempty"`
	DeviceID           uint64                     `json:"device_id,omitempty"`
	Size               uint64                     `json:"size,omitempty"`
	Links              uint64                     `json:"links,omitempty"`
	LinkTarget         string                     `json:"linktarget,omitempty"`
	LinkTargetRaw      []byte                     `json:"linktarget_raw,omitempty"`
	ExtendedAttributes []refAttr                  `json:"extended_attributes,omitempty"`
	GenericAttributes  map[string]json.RawMessage `json:"generic_attributes,omitempty"`
	Device             uint64                     `json:"device,omitempty"`
	Content            []refID                    `json:"content"`
	Subtree            *refID                     `json:"subtree,omitempty"`
	Error              string                     `json:"error,omitempty"`
}

type refAttr struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// refID decodes like restic's ID: the raw JSON must be exactly a quoted
// 64-character hex string (so no escapes, upper case accepted, null refused).
type refID blob.ID

func (id refID) MarshalJSON() ([]byte, error) { return blob.ID(id).MarshalJSON() }

func (id *refID) UnmarshalJSON(b []byte) error {
	if len(b) != 2+2*blob.IDSize {
		return fmt.Errorf("invalid length for ID: %q", b)
	}
	if b[0] != '"' {
		return fmt.Errorf("invalid start of ID string: %q", b[0])
	}
	if _, err := hex.Decode(id[:], b[1:len(b)-1]); err != nil {
		return fmt.Errorf("invalid ID: %w", err)
	}
	return nil
}

// toNode finishes decoding like restic's Node.UnmarshalJSON: the name is
// unquoted and linktarget_raw, when present (even empty), replaces the target.
func (r *refNode) toNode(n *Node) error {
	name, err := strconv.Unquote(`"` + r.Name + `"`)
	if err != nil {
		return fmt.Errorf("node name %q does not unquote: %w", r.Name, err)
	}
	*n = Node{
		Name: name, Type: r.Type, Mode: r.Mode,
		ModTime: r.ModTime, AccessTime: r.AccessTime, ChangeTime: r.ChangeTime,
		UID: r.UID, GID: r.GID, User: r.User, Group: r.Group,
		Inode: r.Inode, DeviceID: r.DeviceID, Size: r.Size, Links: r.Links,
		LinkTarget: r.LinkTarget, GenericAttributes: r.GenericAttributes,
		Device: r.Device, Error: r.Error,
	}
	if r.LinkTargetRaw != nil {
		n.LinkTarget = string(r.LinkTargetRaw)
	}
	if r.ExtendedAttributes != nil {
		n.ExtendedAttributes = make([]ExtendedAttribute, len(r.ExtendedAttributes))
		for i, a := range r.ExtendedAttributes {
			n.ExtendedAttributes[i] = ExtendedAttribute(a)
		}
	}
	if r.Content != nil {
		n.Content = make([]blob.ID, len(r.Content))
		for i, id := range r.Content {
			n.Content[i] = blob.ID(id)
		}
	}
	if r.Subtree != nil {
		id := blob.ID(*r.Subtree)
		n.Subtree = &id
	}
	return nil
}

// decodeReference decodes a tree the way restic 0.19.1's tree iterator does:
// an object whose "nodes" key holds the array of nodes, with unknown keys
// before and after it skipped, each node decoded with encoding/json. Unlike
// restic, which stops quietly at the end of truncated input and ignores what
// follows the closing brace, it reports both as errors: a tree blob has passed
// its hash check, so either means the writer produced something broken.
func decodeReference(buf []byte) (*Tree, error) {
	t, err := decodeReferenceTree(buf)
	if err != nil {
		return nil, fmt.Errorf("decode tree: %w", err)
	}
	return t, nil
}

func decodeReferenceTree(buf []byte) (*Tree, error) {
	dec := json.NewDecoder(bytes.NewReader(buf))
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, tokenErr(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("want an object key, got %v", tok)
		}
		if key == "nodes" {
			break
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, tokenErr(err))
		}
	}
	if err := expectDelim(dec, '['); err != nil {
		return nil, err
	}
	var nodes []*Node
	for dec.More() {
		var r refNode
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("node %d: %w", len(nodes), tokenErr(err))
		}
		n := new(Node)
		if err := r.toNode(n); err != nil {
			return nil, fmt.Errorf("node %d: %w", len(nodes), err)
		}
		nodes = append(nodes, n)
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, err
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, tokenErr(err)
		}
		if tok == json.Delim('}') {
			break
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, fmt.Errorf("key %v: %w", tok, tokenErr(err))
		}
	}
	if rest := buf[dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return nil, fmt.Errorf("%d unexpected bytes after the closing brace", len(rest))
	}
	return newTree(nodes), nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return tokenErr(err)
	}
	if tok != want {
		return fmt.Errorf("want %v, got %v", want, tok)
	}
	return nil
}

// tokenErr turns the io.EOF a json.Decoder reports for input that stops too
// early into a clear error; restic would end the tree there without a word.
func tokenErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of input")
	}
	return err
}
