package tree

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cairn-backup/cairn/repo/blob"
)

var (
	t0   = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	id1  = blob.Hash([]byte("one"))
	id2  = blob.Hash([]byte("two"))
	nyc  = mustLoadLocation("America/New_York")
	half = time.FixedZone("", 5*3600+30*60) // +05:30, not an hour multiple
)

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		// No zoneinfo on this machine: a fixed zone still tests offsets.
		return time.FixedZone("EST", -5*3600)
	}
	return loc
}

func fileNode(name string) *Node {
	return &Node{Name: name, Type: TypeFile, Mode: 0o644, ModTime: t0, AccessTime: t0, ChangeTime: t0, Content: []blob.ID{}}
}

// encodeOne returns the encoded node object (without the tree wrapper) from
// the fast encoder, after checking that the reference encoder agrees.
func encodeOne(t *testing.T, n *Node) (string, error) {
	t.Helper()
	fast, ferr := Encode([]*Node{n})
	ref, rerr := refEncode([]*Node{n})
	if (ferr == nil) != (rerr == nil) {
		t.Fatalf("fast error %v, reference error %v", ferr, rerr)
	}
	if ferr != nil {
		return "", ferr
	}
	if !bytes.Equal(fast, ref) {
		t.Fatalf("fast and reference encodings differ\nfast %s\n ref %s", fast, ref)
	}
	s := string(fast)
	return s[len(treeOpen) : len(s)-len(treeClose)], nil
}

func everyField() *Node {
	return &Node{
		Name: "all", Type: TypeSymlink, Mode: fs.ModeSymlink | 0o777,
		ModTime: t0, AccessTime: t0, ChangeTime: t0,
		UID: 1000, GID: 4294967295, User: "u", Group: "g",
		Inode: 1<<64 - 1, DeviceID: 2, Size: 3, Links: 4,
		LinkTarget:         "t",
		ExtendedAttributes: []ExtendedAttribute{{"user.b", []byte("x")}, {"user.a", nil}},
		GenericAttributes:  map[string]json.RawMessage{"z": json.RawMessage(`1`), "a": json.RawMessage(`{"b": "<"}`)},
		Device:             5,
		Content:            []blob.ID{id1, id2},
		Subtree:            idPtr(id1),
		Error:              "e",
	}
}

func TestEncodeFields(t *testing.T) {
	tests := []struct {
		name   string
		node   func() *Node
		want   string // a substring of the node object
		absent string // a substring that must not appear
	}{
		{"minimal file", func() *Node { return fileNode("a") },
			`{"name":"a","type":"file","mode":420,"mtime":"2024-01-02T03:04:05.123456789Z","atime":"2024-01-02T03:04:05.123456789Z","ctime":"2024-01-02T03:04:05.123456789Z","uid":0,"gid":0,"content":[]}`, ""},
		{"zero node", func() *Node { return &Node{Name: "z"} },
			`{"name":"z","type":"","mtime":"0001-01-01T00:00:00Z","atime":"0001-01-01T00:00:00Z","ctime":"0001-01-01T00:00:00Z","uid":0,"gid":0,"content":null}`, ""},
		{"every field", everyField, `"uid":1000,"gid":4294967295,"user":"u","group":"g","inode":18446744073709551615,"device_id":2,"size":3,"links":4,"linktarget":"t","extended_attributes":[{"name":"user.b","value":"eA=="},{"name":"user.a","value":null}],"generic_attributes":{"a":{"b":"\u003c"},"z":1},"device":5,"content":["` + id1.String() + `","` + id2.String() + `"],"subtree":"` + id1.String() + `","error":"e"}`, ""},
		{"dir mode", func() *Node {
			return &Node{Name: "d", Type: TypeDir, Mode: fs.ModeDir | 0o755, Subtree: idPtr(id1)}
		}, `"mode":2147484141,`, ""},
		{"sticky dir", func() *Node { return &Node{Name: "d", Mode: fs.ModeDir | fs.ModeSticky | 0o777} }, `"mode":2148532735,`, ""},
		{"char device", func() *Node { return &Node{Name: "c", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o644} }, `"mode":69206436,`, ""},
		{"setuid", func() *Node { return &Node{Name: "s", Mode: fs.ModeSetuid | 0o755} }, `"mode":8389101,`, ""},
		{"empty xattr value", func() *Node {
			n := fileNode("x")
			n.ExtendedAttributes = []ExtendedAttribute{{Name: "user.empty", Value: []byte{}}}
			return n
		}, `"extended_attributes":[{"name":"user.empty","value":""}]`, ""},
		{"empty xattr list omitted", func() *Node {
			n := fileNode("x")
			n.ExtendedAttributes = []ExtendedAttribute{}
			n.GenericAttributes = map[string]json.RawMessage{}
			return n
		}, `"gid":0,"content":[]}`, "attributes"},
		{"nil generic value", func() *Node {
			n := fileNode("x")
			n.GenericAttributes = map[string]json.RawMessage{"k\u2028": nil}
			return n
		}, `"generic_attributes":{"k\u2028":null}`, ""},
		{"non-file content list", func() *Node { return &Node{Name: "x", Type: TypeDir, Content: []blob.ID{}} }, `"content":[]`, ""},
		// §9.3 of the spec, verified against restic.
		{"unicode name", func() *Node { return fileNode("ünïcödé 日本") }, `{"name":"ünïcödé 日本",`, ""},
		{"quote and backslash", func() *Node { return fileNode(`quote"back\slash`) }, `{"name":"quote\\\"back\\\\slash",`, ""},
		{"html name", func() *Node { return fileNode("html<&>") }, `{"name":"html\u003c\u0026\u003e",`, ""},
		{"tab name", func() *Node { return fileNode("tab\there") }, `{"name":"tab\\there",`, ""},
		{"invalid utf8 name", func() *Node { return fileNode("bad\xffutf8") }, `{"name":"bad\\xffutf8",`, ""},
		{"nbsp name", func() *Node { return fileNode("nbsp\u00a0x") }, `{"name":"nbsp\\u00a0x",`, ""},
		{"line separator name", func() *Node { return fileNode("ls\u2028x") }, `{"name":"ls\\u2028x",`, ""},
		{"DEL and control name", func() *Node { return fileNode("\x7f\x01\n") }, `{"name":"\\x7f\\x01\\n",`, ""},
		// Plain JSON strings: no quoting, but Go's escaping.
		{"link target escapes", func() *Node {
			return &Node{Name: "l", Type: TypeSymlink, LinkTarget: "tgt\u2028\b\f\x01<>&\"\\\u2029\x7f"}
		}, `"linktarget":"tgt\u2028\b\f\u0001\u003c\u003e\u0026\"\\\u2029` + "\x7f" + `",`, "linktarget_raw"},
		{"invalid utf8 link target", func() *Node { return &Node{Name: "l", Type: TypeSymlink, LinkTarget: "a\xff\xfeb"} },
			`"linktarget":"a\ufffd\ufffdb","linktarget_raw":"Yf/+Yg==",`, ""},
		{"truncated utf8 link target", func() *Node { return &Node{Name: "l", LinkTarget: "\xe2\x80"} },
			`"linktarget":"\ufffd\ufffd","linktarget_raw":"4oA=",`, ""},
		{"user and group escaping", func() *Node { n := fileNode("u"); n.User = "a<b"; n.Group = "\xff"; return n },
			`"user":"a\u003cb","group":"\ufffd",`, ""},
		// Times: the value's own zone, nanoseconds trimmed, UTC as Z.
		{"whole second", func() *Node { n := fileNode("t"); n.ModTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC); return n },
			`"mtime":"2024-01-02T03:04:05Z",`, ""},
		{"half second", func() *Node { n := fileNode("t"); n.ModTime = time.Date(2024, 1, 2, 3, 4, 5, 5e8, time.UTC); return n },
			`"mtime":"2024-01-02T03:04:05.5Z",`, ""},
		{"before epoch", func() *Node { n := fileNode("t"); n.ModTime = time.Unix(-1, 999999999).UTC(); return n },
			`"mtime":"1969-12-31T23:59:59.999999999Z",`, ""},
		{"fixed zone", func() *Node { n := fileNode("t"); n.ModTime = t0.In(time.FixedZone("", -5*3600)); return n },
			`"mtime":"2024-01-01T22:04:05.123456789-05:00",`, ""},
		{"named zone", func() *Node { n := fileNode("t"); n.ModTime = time.Date(2024, 7, 1, 12, 0, 0, 1000, nyc); return n },
			`"mtime":"2024-07-01T12:00:00.000001-04:00",`, ""},
		{"half hour zone", func() *Node { n := fileNode("t"); n.ModTime = t0.In(half); return n },
			`"mtime":"2024-01-02T08:34:05.123456789+05:30",`, ""},
		{"zero offset zone is Z", func() *Node { n := fileNode("t"); n.ModTime = t0.In(time.FixedZone("GMT", 0)); return n },
			`"mtime":"2024-01-02T03:04:05.123456789Z",`, ""},
		{"local monotonic", func() *Node { n := fileNode("t"); n.ModTime = time.Now(); n.AccessTime = n.ModTime.Round(0); return n }, `"mtime":"`, ""},
		{"year before 0", func() *Node { n := fileNode("t"); n.ModTime = time.Date(-5, 3, 4, 5, 6, 7, 8, time.UTC); return n },
			`"mtime":"0000-03-04T05:06:07.000000008Z",`, ""},
		{"year after 9999", func() *Node {
			n := fileNode("t")
			n.ChangeTime = time.Date(12345, 2, 29, 0, 0, 0, 0, time.UTC)
			return n
		},
			`"ctime":"9999-03-01T00:00:00Z",`, ""},
		{"year clamp in zone", func() *Node { n := fileNode("t"); n.AccessTime = time.Date(10000, 6, 1, 0, 0, 0, 0, nyc); return n },
			`"atime":"9999-06-01T00:00:00-04:00",`, ""},
		{"unix zero", func() *Node { n := fileNode("t"); n.ModTime = time.Unix(0, 0).UTC(); return n },
			`"mtime":"1970-01-01T00:00:00Z",`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeOne(t, tc.node())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("encoding lacks %s\n got %s", tc.want, got)
			}
			if tc.absent != "" && strings.Contains(got, tc.absent) {
				t.Errorf("encoding has %s\n got %s", tc.absent, got)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		node *Node
		want string
	}{
		{"zone offset 24h", &Node{Name: "a", ModTime: t0.In(time.FixedZone("", 24*3600))}, "mtime: time zone offset"},
		{"zone offset -30h", &Node{Name: "a", AccessTime: t0.In(time.FixedZone("", -30*3600))}, "atime: time zone offset"},
		{"zone offset 100h", &Node{Name: "a", ChangeTime: t0.In(time.FixedZone("", 100*3600))}, "ctime: time zone offset"},
		{"bad generic attribute", &Node{Name: "a", GenericAttributes: map[string]json.RawMessage{"k": json.RawMessage(`{`)}}, `generic attribute "k"`},
		{"empty generic attribute", &Node{Name: "a", GenericAttributes: map[string]json.RawMessage{"k": {}}}, `generic attribute "k"`},
		{"two generic values", &Node{Name: "a", GenericAttributes: map[string]json.RawMessage{"k": json.RawMessage(`1 2`)}}, `generic attribute "k"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := encodeOne(t, tc.node)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `node "a"`) {
				t.Fatalf("error %v, want one mentioning %q and the node", err, tc.want)
			}
		})
	}
}

func TestBuilderOrder(t *testing.T) {
	var b Builder
	if err := b.Add(fileNode("b")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b", "a", "B"} {
		err := b.Add(fileNode(name))
		if !errors.Is(err, ErrNotOrdered) || !strings.Contains(err.Error(), `node "`+name+`" after "b"`) {
			t.Errorf("Add(%q) = %v, want ErrNotOrdered", name, err)
		}
	}
	if err := b.Add(fileNode("")); err == nil || !strings.Contains(err.Error(), "empty name") {
		t.Errorf("empty name: %v", err)
	}
	if err := b.Add(nil); err == nil {
		t.Error("nil node accepted")
	}
	// A node that fails to encode leaves no trace, and the builder goes on.
	bad := fileNode("c")
	bad.ModTime = t0.In(time.FixedZone("", 25*3600))
	if err := b.Add(bad); err == nil {
		t.Fatal("bad zone accepted")
	}
	// Raw byte order: 0xff sorts after every UTF-8 lead byte, "é" after "z".
	for _, name := range []string{"c", "z", "é", "\xff"} {
		if err := b.Add(fileNode(name)); err != nil {
			t.Fatalf("Add(%q): %v", name, err)
		}
	}
	if b.Len() != 5 {
		t.Fatalf("Len = %d", b.Len())
	}
	got := b.Finish()
	want, err := refEncode([]*Node{fileNode("b"), fileNode("c"), fileNode("z"), fileNode("é"), fileNode("\xff")})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("tree after errors:\n got %s\nwant %s (%v)", got, want, err)
	}
	if _, err := Encode([]*Node{fileNode("b"), fileNode("a")}); !errors.Is(err, ErrNotOrdered) {
		t.Fatalf("Encode unsorted: %v", err)
	}
}

// LinkTargetRaw follows restic's rule: set exactly when the target is not
// valid UTF-8, and decoding restores the raw bytes from it.
func TestLinkTargetRaw(t *testing.T) {
	for _, target := range []string{"", "plain", "ünï", "a\xffb", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80"} {
		n := &Node{Name: "l", Type: TypeSymlink, LinkTarget: target}
		raw := n.LinkTargetRaw()
		if wantRaw := !utf8.ValidString(target); (raw != nil) != wantRaw || (wantRaw && string(raw) != target) {
			t.Errorf("%q: LinkTargetRaw = %q", target, raw)
		}
		enc, err := Encode([]*Node{n})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(enc), "linktarget_raw") != (raw != nil) {
			t.Errorf("%q: encoding %s", target, enc)
		}
		tr, err := Decode(enc)
		if err != nil || tr.Nodes()[0].LinkTarget != target {
			t.Errorf("%q: decoded %q, %v", target, tr.Nodes()[0].LinkTarget, err)
		}
	}
}
