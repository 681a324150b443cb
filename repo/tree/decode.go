package tree

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"math"
	"strconv"
	"time"

	"github.com/cairn-backup/cairn/repo/blob"
)

// Decode parses a tree blob (already hash-checked and decompressed). It
// accepts what restic 0.19.1 accepts: unknown keys are ignored, missing keys
// leave zero values, "content":null is fine on any type, object keys match
// case-insensitively as in encoding/json, and a name that does not unquote is
// an error. Nodes out of order are accepted (see [Tree.Ordered]). Stricter than
// restic, input that ends early or has anything but white space after the
// closing brace is an error rather than a silently shortened tree.
//
// Decode never panics on bad input. Decoded strings do not share memory with
// buf.
func Decode(buf []byte) (*Tree, error) {
	if t, ok := decodeFast(buf); ok {
		return t, nil
	}
	return decodeReference(buf)
}

// decoder is the fast path: a parser for the JSON restic writes. It gives up
// (ok = false, never an error) on anything it does not fully understand, such
// as unknown keys, a key twice, escapes in keys, numbers with a fraction or
// exponent, a surrogate escape or invalid UTF-8, and Decode then runs the
// encoding/json reference over the whole tree. So the fast path needs to be
// right only for what it accepts, and the fuzz test checks exactly that.
type decoder struct {
	buf []byte
	pos int

	// Nodes and IDs are carved out of shared chunks: a tree of 200k files
	// then costs a hundred allocations instead of 400k.
	nodes    []Node
	ids      []blob.ID
	chunkLen int

	// Owner names repeat across a directory; reuse the previous string.
	lastUser, lastGroup string
	// mtime and atime are usually equal; reuse the previous parse.
	lastTimeRaw []byte
	lastTime    time.Time

	scratch []byte // unescaped string bytes
}

func decodeFast(buf []byte) (*Tree, bool) {
	d := decoder{buf: buf}
	if !d.lit(`{`) || !d.lit(`"nodes"`) || !d.lit(`:`) || !d.lit(`[`) {
		return nil, false
	}
	var nodes []*Node
	d.ws()
	if d.peek() == ']' {
		d.pos++
	} else {
		// Every node restic writes starts with {"name": (extended
		// attributes do too, so this may count a few too many), which
		// sizes the node chunk in one go. Content IDs come in chunks of
		// about one per node, the usual number.
		count := bytes.Count(buf[d.pos:], []byte(`{"name":`))
		d.nodes = make([]Node, max(count, 1))
		d.chunkLen = min(max(count, 4), 4096)
		nodes = make([]*Node, 0, max(count, 1))
		for {
			n, ok := d.node()
			if !ok {
				return nil, false
			}
			nodes = append(nodes, n)
			d.ws()
			if d.peek() == ',' {
				d.pos++
				continue
			}
			if !d.lit(`]`) {
				return nil, false
			}
			break
		}
	}
	if !d.lit(`}`) {
		return nil, false
	}
	d.ws()
	if d.pos != len(d.buf) {
		return nil, false
	}
	return newTree(nodes), true
}

// Bits of the fields seen in one node object; a key twice makes the fast path
// give up, because encoding/json's merge rules for repeated keys differ by type.
const (
	fName = 1 << iota
	fType
	fMode
	fMtime
	fAtime
	fCtime
	fUID
	fGID
	fUser
	fGroup
	fInode
	fDeviceID
	fSize
	fLinks
	fLinkTarget
	fLinkTargetRaw
	fXattrs
	fGeneric
	fDevice
	fContent
	fSubtree
	fError
)

func (d *decoder) node() (*Node, bool) {
	if len(d.nodes) == 0 {
		// More nodes than counted: only in input not written by restic.
		d.nodes = make([]Node, d.chunkLen)
	}
	n := &d.nodes[0]
	d.nodes = d.nodes[1:]

	if !d.lit(`{`) {
		return nil, false
	}
	var seen uint32
	var rawTarget []byte
	var haveRaw, ok bool
	d.ws()
	if d.peek() == '}' {
		d.pos++
		return n, true // restic reads {} as a node with an empty name
	}
	for {
		key, kok := d.key()
		if !kok {
			return nil, false
		}
		bit := keyBit(key)
		if bit == 0 || seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		d.ws()
		if !d.null() { // null leaves every field at its zero value
			switch bit {
			case fName:
				ok = d.name(&n.Name)
			case fType:
				var b []byte
				if b, ok = d.str(); ok {
					n.Type = internType(b)
				}
			case fMode:
				var v uint64
				v, ok = d.uint(math.MaxUint32)
				n.Mode = fs.FileMode(v)
			case fMtime:
				n.ModTime, ok = d.time()
			case fAtime:
				n.AccessTime, ok = d.time()
			case fCtime:
				n.ChangeTime, ok = d.time()
			case fUID:
				var v uint64
				v, ok = d.uint(math.MaxUint32)
				n.UID = uint32(v)
			case fGID:
				var v uint64
				v, ok = d.uint(math.MaxUint32)
				n.GID = uint32(v)
			case fUser:
				ok = d.internStr(&n.User, &d.lastUser)
			case fGroup:
				ok = d.internStr(&n.Group, &d.lastGroup)
			case fInode:
				n.Inode, ok = d.uint(math.MaxUint64)
			case fDeviceID:
				n.DeviceID, ok = d.uint(math.MaxUint64)
			case fSize:
				n.Size, ok = d.uint(math.MaxUint64)
			case fLinks:
				n.Links, ok = d.uint(math.MaxUint64)
			case fLinkTarget:
				var b []byte
				if b, ok = d.str(); ok {
					n.LinkTarget = string(b)
				}
			case fLinkTargetRaw:
				rawTarget, ok = d.base64()
				haveRaw = true
			case fXattrs:
				n.ExtendedAttributes, ok = d.xattrs()
			case fDevice:
				n.Device, ok = d.uint(math.MaxUint64)
			case fContent:
				n.Content, ok = d.content()
			case fSubtree:
				n.Subtree, ok = d.subtree()
			case fError:
				var b []byte
				if b, ok = d.str(); ok {
					n.Error = string(b)
				}
			case fGeneric:
				n.GenericAttributes, ok = d.generic()
			}
			if !ok {
				return nil, false
			}
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.pos++
			d.ws()
			continue
		case '}':
			d.pos++
		default:
			return nil, false
		}
		break
	}
	if haveRaw {
		n.LinkTarget = string(rawTarget)
	}
	return n, true
}

// keyBit maps the exact spelling restic writes to the field's bit. Any other
// spelling, including the case variants encoding/json would also accept, is 0.
func keyBit(k []byte) uint32 {
	switch string(k) {
	case "name":
		return fName
	case "type":
		return fType
	case "mode":
		return fMode
	case "mtime":
		return fMtime
	case "atime":
		return fAtime
	case "ctime":
		return fCtime
	case "uid":
		return fUID
	case "gid":
		return fGID
	case "user":
		return fUser
	case "group":
		return fGroup
	case "inode":
		return fInode
	case "device_id":
		return fDeviceID
	case "size":
		return fSize
	case "links":
		return fLinks
	case "linktarget":
		return fLinkTarget
	case "linktarget_raw":
		return fLinkTargetRaw
	case "extended_attributes":
		return fXattrs
	case "generic_attributes":
		return fGeneric
	case "device":
		return fDevice
	case "content":
		return fContent
	case "subtree":
		return fSubtree
	case "error":
		return fError
	}
	return 0
}

func internType(b []byte) Type {
	for _, t := range [...]Type{TypeFile, TypeDir, TypeSymlink, TypeDev, TypeCharDev, TypeFifo, TypeSocket, TypeIrregular} {
		if string(b) == string(t) {
			return t
		}
	}
	return Type(b)
}

// name decodes a node name: a JSON string holding strconv.Quote's output
// without the quotes. Names that Quote leaves alone (no backslash, quote or
// newline; always valid UTF-8 here) need no Unquote call.
func (d *decoder) name(dst *string) bool {
	b, ok := d.str()
	if !ok {
		return false
	}
	if !needsUnquote(b) {
		*dst = string(b)
		return true
	}
	s, err := strconv.Unquote(`"` + string(b) + `"`)
	if err != nil {
		return false // the reference path reports it
	}
	*dst = s
	return true
}

func needsUnquote(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c == '"' || c == '\n' {
			return true
		}
	}
	return false
}

func (d *decoder) internStr(dst, last *string) bool {
	b, ok := d.str()
	if !ok {
		return false
	}
	if string(b) != *last {
		*last = string(b)
	}
	*dst = *last
	return true
}

// time parses a JSON string with time.Time.UnmarshalJSON on the raw literal,
// exactly what encoding/json does (it does not unescape the string either).
func (d *decoder) time() (time.Time, bool) {
	start := d.pos
	if !d.skipPlainStr() {
		return time.Time{}, false
	}
	raw := d.buf[start:d.pos]
	if d.lastTimeRaw != nil && bytes.Equal(raw, d.lastTimeRaw) {
		return d.lastTime, true
	}
	var t time.Time
	if err := t.UnmarshalJSON(raw); err != nil {
		return time.Time{}, false
	}
	d.lastTimeRaw, d.lastTime = raw, t
	return t, true
}

// content decodes a list of IDs; [] gives an empty non-nil slice, as in
// encoding/json. The IDs live in the shared chunk; the returned slice has no
// spare capacity, so appending to it cannot overwrite a neighbour.
func (d *decoder) content() ([]blob.ID, bool) {
	if !d.lit(`[`) {
		return nil, false
	}
	d.ws()
	if d.peek() == ']' {
		d.pos++
		return []blob.ID{}, true
	}
	out := d.ids[len(d.ids):len(d.ids)]
	for {
		if len(out) == cap(out) {
			// The chunk is full: continue this list in a new one.
			chunk := make([]blob.ID, 0, max(d.chunkLen, 2*len(out)+1))
			out = append(chunk, out...)
			d.ids = chunk
		}
		out = out[:len(out)+1]
		if !d.id(&out[len(out)-1]) {
			return nil, false
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.pos++
			d.ws()
			continue
		case ']':
			d.pos++
			d.ids = d.ids[:len(d.ids)+len(out)]
			return out[:len(out):len(out)], true
		}
		return nil, false
	}
}

func (d *decoder) subtree() (*blob.ID, bool) {
	if len(d.ids) == cap(d.ids) {
		d.ids = make([]blob.ID, 0, d.chunkLen)
	}
	d.ids = d.ids[:len(d.ids)+1]
	id := &d.ids[len(d.ids)-1]
	if !d.id(id) {
		return nil, false
	}
	return id, true
}

// id decodes an ID the way restic's ID.UnmarshalJSON does: exactly 64 hex
// digits between quotes (upper case is accepted there too).
func (d *decoder) id(dst *blob.ID) bool {
	b := d.buf[d.pos:]
	if len(b) < 2+2*blob.IDSize || b[0] != '"' || b[1+2*blob.IDSize] != '"' {
		return false
	}
	if _, err := hex.Decode(dst[:], b[1:1+2*blob.IDSize]); err != nil {
		return false
	}
	d.pos += 2 + 2*blob.IDSize
	return true
}

// base64 decodes a []byte the way encoding/json does (standard padded
// alphabet); always non-nil, since only null gives nil.
func (d *decoder) base64() ([]byte, bool) {
	start := d.pos
	if !d.skipPlainStr() {
		return nil, false
	}
	s := d.buf[start+1 : d.pos-1]
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}

// generic decodes the generic_attributes object (Windows metadata) into a
// map of raw values, each the exact bytes of the value as encoding/json's
// json.RawMessage keeps them. A repeated key keeps the last value, as in
// encoding/json.
func (d *decoder) generic() (map[string]json.RawMessage, bool) {
	if !d.lit(`{`) {
		return nil, false
	}
	m := map[string]json.RawMessage{}
	d.ws()
	if d.peek() == '}' {
		d.pos++
		return m, true
	}
	for {
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		key := string(k)
		d.ws()
		if d.peek() != ':' {
			return nil, false
		}
		d.pos++
		d.ws()
		v, ok := d.rawValue()
		if !ok {
			return nil, false
		}
		m[key] = v
		d.ws()
		switch d.peek() {
		case ',':
			d.pos++
			d.ws()
			continue
		case '}':
			d.pos++
			return m, true
		}
		return nil, false
	}
}

func (d *decoder) xattrs() ([]ExtendedAttribute, bool) {
	if !d.lit(`[`) {
		return nil, false
	}
	out := []ExtendedAttribute{}
	d.ws()
	if d.peek() == ']' {
		d.pos++
		return out, true
	}
	for {
		var a ExtendedAttribute
		if !d.xattr(&a) {
			return nil, false
		}
		out = append(out, a)
		d.ws()
		switch d.peek() {
		case ',':
			d.pos++
			d.ws()
			continue
		case ']':
			d.pos++
			return out, true
		}
		return nil, false
	}
}

func (d *decoder) xattr(a *ExtendedAttribute) bool {
	if !d.lit(`{`) {
		return false
	}
	var haveName, haveValue bool
	d.ws()
	if d.peek() == '}' {
		d.pos++
		return true
	}
	for {
		key, ok := d.key()
		if !ok {
			return false
		}
		d.ws()
		switch string(key) {
		case "name":
			if haveName {
				return false
			}
			haveName = true
			if !d.null() {
				b, ok := d.str()
				if !ok {
					return false
				}
				a.Name = string(b)
			}
		case "value":
			if haveValue {
				return false
			}
			haveValue = true
			if !d.null() {
				if a.Value, ok = d.base64(); !ok {
					return false
				}
			}
		default:
			return false
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.pos++
			d.ws()
			continue
		case '}':
			d.pos++
			return true
		}
		return false
	}
}
