package tree

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/repo/blob"
)

// source turns fuzz input into choices; past the end it yields zeros, so
// every input makes some nodes.
type source struct{ b []byte }

func (s *source) byte() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *source) uint64() uint64 {
	var buf [8]byte
	n := copy(buf[:], s.b)
	s.b = s.b[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

func (s *source) bytes(maxLen int) []byte {
	n := min(int(s.byte())%(maxLen+1), len(s.b))
	out := s.b[:n:n]
	s.b = s.b[n:]
	return out
}

// awkward are strings the escaping rules treat differently.
var awkward = []string{"", "a", "\xff", "\u2028", "\u2029", "\u00a0", "<&>", `"`, `\`, "\t\n\r\b\f\x00\x1f", "\x7f",
	"ü", "日本", "😀", "\xed\xa0\x80", "\xe2\x80", "%x", "\\u0041", "\ufffd", "\U0010ffff", "\xc0\x80"}

func (s *source) str(maxLen int) string {
	var b strings.Builder
	for range int(s.byte() % 4) {
		if c := s.byte(); c < 128 {
			b.WriteString(awkward[int(c)%len(awkward)])
		} else {
			b.Write(s.bytes(maxLen))
		}
	}
	return b.String()
}

var zones = []*time.Location{time.UTC, time.Local, nyc, half, time.FixedZone("", -12*3600), time.FixedZone("X", 0)}

func (s *source) time() time.Time {
	switch c := s.byte(); {
	case c < 16:
		return time.Time{}
	case c < 32:
		// Anywhere in time.Time's range, including years to be clamped
		// and zones too far off to be written.
		t := time.Unix(int64(s.uint64()), int64(s.uint64()%1e9))
		if c%2 == 0 {
			return t.In(time.FixedZone("", int(int32(s.uint64()))%(40*3600)))
		}
		return t.In(zones[int(s.byte())%len(zones)])
	default:
		// 1900..2100, the usual case, with nanoseconds often zero.
		sec := int64(s.uint64()%(200*365*86400)) - 70*365*86400
		nsec := int64(0)
		if c%3 != 0 {
			nsec = int64(s.uint64() % 1e9)
		}
		return time.Unix(sec, nsec).In(zones[int(c)%len(zones)])
	}
}

func (s *source) id() blob.ID {
	var id blob.ID
	id[0], id[31] = s.byte(), s.byte()
	return id
}

var rawJSON = []string{`1`, ` {"a" : "<b>"} `, `null`, `"\u2028"`, "\"\u2028&\"", `[1, 2]`, `{`, ``, `1 2`, `"x`, `tru`}

// node builds a node with each field present or not.
func (s *source) node() *Node {
	n := &Node{Name: s.str(12)}
	flags := s.uint64()
	bit := func() bool { r := flags&1 != 0; flags >>= 1; return r }
	types := []Type{TypeFile, TypeDir, TypeSymlink, TypeDev, TypeCharDev, TypeFifo, TypeSocket, TypeIrregular, "", "weird<"}
	n.Type = types[int(s.byte())%len(types)]
	if bit() {
		n.Mode = fs.FileMode(uint32(s.uint64()))
	}
	n.ModTime = s.time()
	if bit() {
		n.AccessTime = n.ModTime
	} else {
		n.AccessTime = s.time()
	}
	n.ChangeTime = s.time()
	if bit() {
		n.UID, n.GID = uint32(s.uint64()), uint32(s.uint64())
	}
	if bit() {
		n.User, n.Group = s.str(6), s.str(6)
	}
	for _, f := range []*uint64{&n.Inode, &n.DeviceID, &n.Size, &n.Links, &n.Device} {
		if bit() {
			*f = s.uint64() >> (s.byte() % 64)
		}
	}
	if bit() {
		n.LinkTarget = s.str(20)
	}
	if bit() {
		n.ExtendedAttributes = []ExtendedAttribute{}
		for range int(s.byte() % 4) {
			a := ExtendedAttribute{Name: s.str(8)}
			switch s.byte() % 3 {
			case 1:
				a.Value = []byte{}
			case 2:
				a.Value = s.bytes(16)
			}
			n.ExtendedAttributes = append(n.ExtendedAttributes, a)
		}
	}
	if bit() && bit() {
		n.GenericAttributes = map[string]json.RawMessage{}
		for range int(s.byte() % 3) {
			var v json.RawMessage
			if c := s.byte(); c < 250 {
				v = json.RawMessage(rawJSON[int(c)%len(rawJSON)])
			}
			n.GenericAttributes[s.str(6)] = v
		}
	}
	if bit() {
		n.Content = []blob.ID{}
		for range int(s.byte() % 4) {
			n.Content = append(n.Content, s.id())
		}
	}
	if bit() {
		id := s.id()
		n.Subtree = &id
	}
	if bit() && bit() {
		n.Error = s.str(8)
	}
	return n
}

// FuzzEncode builds random nodes and requires the fast encoder to produce
// exactly the reference (encoding/json) bytes or fail where it fails, and the
// result to decode back to the same encoding.
func FuzzEncode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x03\x81\x05hello\x00\xff\xff\xff\xff\xff\xff\xff\xff\x10"))
	f.Add(bytes.Repeat([]byte{0xff, 0x11, 0x80, 0x07}, 64))
	f.Add(bytes.Repeat([]byte{0x1f, 0x03, 0x20, 0x90, 0x01}, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &source{b: data}
		var nodes []*Node
		for range 1 + int(s.byte()%4) {
			nodes = append(nodes, s.node())
		}
		if s.byte()%8 != 0 { // mostly sorted, sometimes as generated
			slices.SortStableFunc(nodes, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
		}
		fast, ferr := Encode(nodes)
		ref, rerr := refEncode(nodes)
		if (ferr == nil) != (rerr == nil) {
			t.Fatalf("fast error %v, reference error %v", ferr, rerr)
		}
		if ferr != nil {
			return
		}
		if !bytes.Equal(fast, ref) {
			t.Fatalf("encodings differ\nfast %q\n ref %q", fast, ref)
		}
		tr, err := Decode(fast)
		if err != nil {
			t.Fatalf("cannot decode own output: %v\n%q", err, fast)
		}
		if _, ok := decodeFast(fast); !ok {
			t.Fatalf("fast decoder gave up on canonical output %q", fast)
		}
		// Plain strings (not names or link targets) with invalid UTF-8 are
		// written with U+FFFD and zone offsets lose their seconds, as in
		// restic; such a tree re-encodes differently once, then stays.
		again, err := Encode(tr.Nodes())
		if err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		if lossy(nodes) {
			tr, err = Decode(again)
			if err != nil {
				t.Fatal(err)
			}
			fast = again
			if again, err = Encode(tr.Nodes()); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(again, fast) {
			t.Fatalf("decode+encode changed the tree\nwas %q\nnow %q", fast, again)
		}
		for i, n := range tr.Nodes() {
			o := nodes[i]
			if n.Name != o.Name || n.LinkTarget != o.LinkTarget || !slices.Equal(n.Content, o.Content) ||
				(n.Content == nil) != (o.Content == nil) || (n.Subtree == nil) != (o.Subtree == nil) {
				t.Fatalf("node %d lost a lossless field:\n%#v\n%#v", i, n, o)
			}
			// Equal must imply the same encoding; the converse holds for
			// nodes whose strings are all valid UTF-8 and times in range.
			if n.Equal(o) {
				one, _ := Encode([]*Node{n})
				two, err := Encode([]*Node{o})
				if err != nil || !bytes.Equal(one, two) {
					t.Fatalf("Equal nodes encode differently:\n%q\n%q", one, two)
				}
			}
		}
	})
}

// lossy reports whether a node has a plain string that is not valid UTF-8 or
// a time zone offset with seconds, which RFC 3339 cannot write (an offset of
// +30s is written as +00:00 and read back as UTC).
func lossy(nodes []*Node) bool {
	for _, n := range nodes {
		for _, t := range []time.Time{n.ModTime, n.AccessTime, n.ChangeTime} {
			if _, off := t.Zone(); off%60 != 0 {
				return true
			}
		}
		strs := []string{string(n.Type), n.User, n.Group, n.Error}
		for _, a := range n.ExtendedAttributes {
			strs = append(strs, a.Name)
		}
		for k := range n.GenericAttributes {
			strs = append(strs, k)
		}
		for _, s := range strs {
			if !utf8.ValidString(s) {
				return true
			}
		}
	}
	return false
}

func hasGeneric(nodes []*Node) bool {
	for _, n := range nodes {
		if len(n.GenericAttributes) > 0 {
			return true
		}
	}
	return false
}

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, the fast
// path must agree with the encoding/json reference whenever it accepts, and
// decode → encode → decode → encode must be stable.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"golden", "restic"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(b)
			}
		}
	}
	for _, s := range []string{
		`{"nodes":[]}`,
		`{"nodes":[{"name":"a\\x00","mtime":"2024-01-01T00:00:00+01:00","content":[],"extended_attributes":[{"name":"n","value":""}]}]}`,
		`{"x":1,"nodes":[{"NAME":"b","linktarget_raw":"/w==","generic_attributes":{"k":{"a": [1,2]}}}],"y":[]}`,
		`{"nodes":[{"name":"\ud800\u00e9","user":"\u2028","subtree":"` + hexID + `"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(checkDecode)
}

// FuzzDecodeMutated makes a valid tree from random nodes and then edits a
// few bytes with JSON's own characters, which reaches the corners of both
// decoders far more often than random bytes do.
func FuzzDecodeMutated(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add(bytes.Repeat([]byte{0x1f, 0x03, 0x20, 0x90, 0x01}, 64), []byte("\x05\x10\x01"))
	f.Fuzz(func(t *testing.T, gen, edits []byte) {
		s := &source{b: gen}
		var nodes []*Node
		for range 1 + int(s.byte()%3) {
			nodes = append(nodes, s.node())
		}
		slices.SortStableFunc(nodes, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
		data, err := Encode(nodes)
		if err != nil {
			return
		}
		const alphabet = "\"{}[],:\\ 0123456789-+.eEZTnultrfaxu_\n\xff\x00"
		e := &source{b: edits}
		for len(e.b) >= 3 {
			pos := int(binary.LittleEndian.Uint16([]byte{e.byte(), e.byte()})) % (len(data) + 1)
			c := e.byte()
			switch ch := alphabet[int(c>>2)%len(alphabet)]; c & 3 {
			case 0: // delete
				if pos < len(data) {
					data = slices.Delete(data, pos, pos+1)
				}
			case 1: // insert
				data = slices.Insert(data, pos, ch)
			default: // replace
				if pos < len(data) {
					data[pos] = ch
				}
			}
		}
		checkDecode(t, data)
	})
}

// checkDecode is the property both decode fuzzers check.
func checkDecode(t *testing.T, data []byte) {
	fast, fastOK := decodeFast(data)
	ref, refErr := decodeReference(data)
	if fastOK {
		if refErr != nil {
			t.Fatalf("fast path accepted what the reference rejects: %v\n%q", refErr, data)
		}
		if d := diffTrees(fast, ref); d != "" {
			t.Fatalf("fast and reference differ: %s\n%q", d, data)
		}
	}
	tr, err := Decode(data)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("Decode error %v, reference %v", err, refErr)
	}
	if err != nil || !tr.Ordered() || (tr.Len() > 0 && tr.Nodes()[0].Name == "") {
		return // restic cannot encode these either
	}
	enc1, err := Encode(tr.Nodes())
	if err != nil {
		t.Fatalf("decoded tree does not encode: %v\n%q", err, data)
	}
	tr2, err := Decode(enc1)
	if err != nil {
		t.Fatalf("own encoding does not decode: %v\n%q", err, enc1)
	}
	if !hasGeneric(tr.Nodes()) {
		// Generic attribute values are compacted on the way out,
		// everything else must come back as it was decoded.
		if d := diffTreesLoc(tr, tr2, false); d != "" {
			t.Fatalf("decode→encode→decode changed the tree: %s\n%q", d, enc1)
		}
	}
	enc2, err := Encode(tr2.Nodes())
	if err != nil || !bytes.Equal(enc1, enc2) {
		t.Fatalf("encoding not stable (%v)\n%q\n%q", err, enc1, enc2)
	}
}
