package tree

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/blob"
)

// decodeBoth runs Decode and checks that whenever the fast path accepts the
// input, the reference path accepts it with the same result.
func decodeBoth(t *testing.T, in string) (*Tree, error, bool) {
	t.Helper()
	fast, fastOK := decodeFast([]byte(in))
	ref, refErr := decodeReference([]byte(in))
	if fastOK {
		if refErr != nil {
			t.Fatalf("fast path accepted what the reference rejects (%v): %s", refErr, in)
		}
		if d := diffTrees(fast, ref); d != "" {
			t.Fatalf("fast and reference differ: %s\ninput %s", d, in)
		}
	}
	got, err := Decode([]byte(in))
	if (err == nil) != (refErr == nil) {
		t.Fatalf("Decode error %v, reference error %v", err, refErr)
	}
	return got, err, fastOK
}

const hexID = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		fast  bool // whether the fast path should handle it
		check func(t *testing.T, n *Node)
	}{
		{"canonical", `{"nodes":[{"name":"a","type":"file","mode":420,"mtime":"2024-01-02T03:04:05.5Z","atime":"2024-01-02T03:04:05.5Z","ctime":"2024-01-02T03:04:05Z","uid":1,"gid":2,"user":"u","group":"g","inode":3,"device_id":4,"size":5,"links":6,"content":["` + hexID + `"]}]}` + "\n", true,
			func(t *testing.T, n *Node) {
				if n.Name != "a" || n.Mode != 420 || n.UID != 1 || n.GID != 2 || n.User != "u" || n.Group != "g" ||
					n.Inode != 3 || n.DeviceID != 4 || n.Size != 5 || n.Links != 6 || len(n.Content) != 1 || n.Content[0].String() != hexID ||
					!n.ModTime.Equal(time.Date(2024, 1, 2, 3, 4, 5, 5e8, time.UTC)) || n.ModTime.Location() != time.UTC {
					t.Errorf("%+v", n)
				}
			}},
		{"missing keys are zero", `{"nodes":[{"name":"a"}]}`, true, func(t *testing.T, n *Node) {
			if !n.Equal(&Node{Name: "a"}) {
				t.Errorf("%+v", n)
			}
		}},
		{"empty object is a nameless node", `{"nodes":[{}]}`, true, func(t *testing.T, n *Node) {
			if !n.Equal(&Node{}) {
				t.Errorf("%+v", n)
			}
		}},
		{"null node is a nameless node", `{"nodes":[null]}`, false, func(t *testing.T, n *Node) {
			if !n.Equal(&Node{}) {
				t.Errorf("%+v", n)
			}
		}},
		{"nulls everywhere", `{"nodes":[{"name":null,"type":null,"mode":null,"mtime":null,"uid":null,"user":null,"linktarget_raw":null,"extended_attributes":null,"generic_attributes":null,"content":null,"subtree":null,"error":null}]}`, true,
			func(t *testing.T, n *Node) {
				if !n.Equal(&Node{}) || n.ExtendedAttributes != nil || n.GenericAttributes != nil {
					t.Errorf("%+v", n)
				}
			}},
		{"content null on a file", `{"nodes":[{"name":"f","type":"file","content":null}]}`, true, func(t *testing.T, n *Node) {
			if n.Content != nil {
				t.Errorf("content %v", n.Content)
			}
		}},
		{"content empty", `{"nodes":[{"name":"f","content":[]}]}`, true, func(t *testing.T, n *Node) {
			if n.Content == nil || len(n.Content) != 0 {
				t.Errorf("content %#v", n.Content)
			}
		}},
		{"upper case ID as restic accepts", `{"nodes":[{"name":"d","subtree":"` + strings.ToUpper(hexID) + `"}]}`, true, func(t *testing.T, n *Node) {
			if n.Subtree == nil || n.Subtree.String() != hexID {
				t.Errorf("subtree %v", n.Subtree)
			}
		}},
		{"white space", " {\n\"nodes\" : [ { \"name\" : \"a\" , \"content\" : [ \"" + hexID + "\" , \"" + hexID + "\" ] } , {\"name\":\"b\"} ] } \n\t", true,
			func(t *testing.T, n *Node) {
				if n.Name != "a" || len(n.Content) != 2 {
					t.Errorf("%+v", n)
				}
			}},
		{"unknown node key", `{"nodes":[{"name":"a","future":{"x":[1,2]},"size":7}]}`, false, func(t *testing.T, n *Node) {
			if n.Name != "a" || n.Size != 7 {
				t.Errorf("%+v", n)
			}
		}},
		{"keys match case-insensitively like encoding/json", `{"nodes":[{"NAME":"a","Size":7,"linK":9}]}`, false, func(t *testing.T, n *Node) {
			if n.Name != "a" || n.Size != 7 {
				t.Errorf("%+v", n)
			}
		}},
		{"unknown top-level keys", `{"a":1,"nodes":[{"name":"a"}],"b":{"nodes":[]},"nodes":7}`, false, func(t *testing.T, n *Node) {
			if n.Name != "a" {
				t.Errorf("%+v", n)
			}
		}},
		{"escaped nodes key", `{"nod\u0065s":[{"name":"a"}]}`, false, nil},
		{"repeated key: last wins", `{"nodes":[{"name":"a","size":1,"size":2}]}`, false, func(t *testing.T, n *Node) {
			if n.Size != 2 {
				t.Errorf("size %d", n.Size)
			}
		}},
		{"escaped name", `{"nodes":[{"name":"tab\\t\\\"q\\\\b\\xff\\u00a0"}]}`, true, func(t *testing.T, n *Node) {
			if n.Name != "tab\t\"q\\b\xff\u00a0" {
				t.Errorf("name %q", n.Name)
			}
		}},
		{"JSON escapes in strings", `{"nodes":[{"name":"\u0061\/","linktarget":"\b\f\n\r\t\u2028\u00e9\"","user":"\u003c"}]}`, true, func(t *testing.T, n *Node) {
			if n.Name != "a/" || n.LinkTarget != "\b\f\n\r\t\u2028é\"" || n.User != "<" {
				t.Errorf("%+v", n)
			}
		}},
		{"surrogate pair", `{"nodes":[{"name":"x","linktarget":"\ud83d\ude00"}]}`, false, func(t *testing.T, n *Node) {
			if n.LinkTarget != "😀" {
				t.Errorf("target %q", n.LinkTarget)
			}
		}},
		{"lone surrogate becomes U+FFFD", `{"nodes":[{"name":"x","linktarget":"\ud83d"}]}`, false, func(t *testing.T, n *Node) {
			if n.LinkTarget != "\ufffd" {
				t.Errorf("target %q", n.LinkTarget)
			}
		}},
		{"raw invalid UTF-8 becomes U+FFFD", "{\"nodes\":[{\"name\":\"x\",\"linktarget\":\"a\xffb\"}]}", false, func(t *testing.T, n *Node) {
			if n.LinkTarget != "a\ufffdb" {
				t.Errorf("target %q", n.LinkTarget)
			}
		}},
		{"linktarget_raw wins", `{"nodes":[{"name":"l","linktarget":"lossy","linktarget_raw":"/w=="}]}`, true, func(t *testing.T, n *Node) {
			if n.LinkTarget != "\xff" {
				t.Errorf("target %q", n.LinkTarget)
			}
		}},
		{"empty linktarget_raw clears the target", `{"nodes":[{"name":"l","linktarget":"x","linktarget_raw":""}]}`, true, func(t *testing.T, n *Node) {
			if n.LinkTarget != "" {
				t.Errorf("target %q", n.LinkTarget)
			}
		}},
		{"xattrs nil and empty values", `{"nodes":[{"name":"x","extended_attributes":[{"name":"a","value":null},{"value":"","name":"b"},{}]}]}`, true, func(t *testing.T, n *Node) {
			xa := n.ExtendedAttributes
			if len(xa) != 3 || xa[0].Value != nil || xa[1].Value == nil || len(xa[1].Value) != 0 || xa[1].Name != "b" || xa[2].Name != "" {
				t.Errorf("%#v", xa)
			}
		}},
		{"generic attributes", `{"nodes":[{"name":"w","generic_attributes":{"windows.file_attributes": 32 ,"x":null,"s":{"a" : ["}", "\"", 1.5e3]},"x\u00e9":"v"}}]}`, true, func(t *testing.T, n *Node) {
			g := n.GenericAttributes
			if len(g) != 4 || string(g["windows.file_attributes"]) != "32" || string(g["x"]) != "null" ||
				string(g["s"]) != `{"a" : ["}", "\"", 1.5e3]}` || string(g["xé"]) != `"v"` {
				t.Errorf("%q", n.GenericAttributes)
			}
		}},
		{"time in a local or fixed zone", `{"nodes":[{"name":"t","mtime":"2024-01-01T22:04:05.5-05:00","ctime":"2024-01-01T22:04:05+05:30"}]}`, true, func(t *testing.T, n *Node) {
			if _, off := n.ModTime.Zone(); off != -5*3600 || !n.ModTime.Equal(time.Date(2024, 1, 2, 3, 4, 5, 5e8, time.UTC)) {
				t.Errorf("mtime %v", n.ModTime)
			}
			if _, off := n.ChangeTime.Zone(); off != 5*3600+1800 {
				t.Errorf("ctime %v", n.ChangeTime)
			}
		}},
		{"time with +00:00", `{"nodes":[{"name":"t","mtime":"2024-01-02T03:04:05+00:00"}]}`, true, nil},
		{"time with comma fraction, as time.Parse allows", `{"nodes":[{"name":"t","mtime":"2024-01-02T03:04:05,5Z"}]}`, true, func(t *testing.T, n *Node) {
			if n.ModTime.Nanosecond() != 5e8 {
				t.Errorf("mtime %v", n.ModTime)
			}
		}},
		{"unsorted nodes are read", `{"nodes":[{"name":"b"},{"name":"a"},{"name":"a"}]}`, true, nil},
		{"max uint64", `{"nodes":[{"name":"n","inode":18446744073709551615,"mode":4294967295,"uid":4294967295}]}`, true, func(t *testing.T, n *Node) {
			if n.Inode != 1<<64-1 || n.Mode != 1<<32-1 || n.UID != 1<<32-1 {
				t.Errorf("%+v", n)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err, fastOK := decodeBoth(t, tc.in)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if fastOK != tc.fast {
				t.Errorf("fast path handled it: %v, want %v", fastOK, tc.fast)
			}
			if tc.check != nil {
				tc.check(t, tr.Nodes()[0])
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	node := func(fields string) string { return `{"nodes":[{"name":"a"` + fields + `}]}` }
	tests := []struct{ name, in, want string }{
		{"empty input", ``, "unexpected end"},
		{"not an object", `[]`, "want {"},
		{"no nodes key", `{}`, "want an object key"},
		{"nodes null", `{"nodes":null}`, "want ["},
		{"nodes object", `{"nodes":{}}`, "want ["},
		{"truncated in array", `{"nodes":[{"name":"a"}`, "unexpected end"},
		{"truncated after array", `{"nodes":[]`, "unexpected end"},
		{"truncated in node", `{"nodes":[{"name":"a"`, "unexpected end"},
		{"trailing garbage", `{"nodes":[]}x`, "after the closing brace"},
		{"second object", `{"nodes":[]}{"nodes":[]}`, "after the closing brace"},
		{"trailing comma", `{"nodes":[{"name":"a"},]}`, "invalid character"},
		{"name does not unquote", node(`,"x":1,"name":"\\q"`), "does not unquote"},
		{"name with raw quote", `{"nodes":[{"name":"a\"b"}]}`, "does not unquote"},
		{"name with raw newline", `{"nodes":[{"name":"a\nb"}]}`, "does not unquote"},
		{"name is a number", `{"nodes":[{"name":1}]}`, "cannot unmarshal"},
		{"node is a string", `{"nodes":["a"]}`, "cannot unmarshal"},
		{"negative number", node(`,"size":-1`), "cannot unmarshal"},
		{"fraction", node(`,"size":1.0`), "cannot unmarshal"},
		{"exponent", node(`,"inode":1e3`), "cannot unmarshal"},
		{"uint32 overflow", node(`,"uid":4294967296`), "cannot unmarshal"},
		{"uint64 overflow", node(`,"size":18446744073709551616`), "cannot unmarshal"},
		{"mode overflow", node(`,"mode":4294967296`), "cannot unmarshal"},
		{"leading zero", node(`,"size":01`), "invalid character"},
		{"number as string", node(`,"size":"1"`), "cannot unmarshal"},
		{"bad time", node(`,"mtime":"2024-13-01T00:00:00Z"`), "month"},
		{"time without zone", node(`,"mtime":"2024-01-01T00:00:00"`), "cannot parse"},
		{"time as number", node(`,"mtime":0`), "not a JSON string"},
		{"short ID", node(`,"subtree":"abcd"`), "invalid length for ID"},
		{"ID with escape", node(`,"content":["\u0032` + hexID[1:59] + `"]`), "invalid ID"},
		{"non-hex ID", node(`,"content":["` + strings.Repeat("g", 64) + `"]`), "invalid ID"},
		{"null in content", node(`,"content":[null]`), "invalid length for ID"},
		{"bad base64", node(`,"linktarget_raw":"!!!"`), "illegal base64"},
		{"bad xattr value", node(`,"extended_attributes":[{"name":"a","value":"x"}]`), "illegal base64"},
		{"control character in string", "{\"nodes\":[{\"name\":\"a\x01\"}]}", "invalid character"},
		{"bad escape", node(`,"user":"\x"`), "invalid character"},
		{"bad generic value", node(`,"generic_attributes":{"k":tru}`), "invalid character"},
		{"generic value missing", node(`,"generic_attributes":{"k":}`), "invalid character"},
		{"generic not an object", node(`,"generic_attributes":[1]`), "cannot unmarshal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err, fastOK := decodeBoth(t, tc.in)
			if fastOK {
				t.Errorf("fast path accepted bad input")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "decode tree") {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestFind(t *testing.T) {
	names := []string{"", "a", "a\x00", "b", "é", "\xff"}
	var nodes []*Node
	for _, n := range names[1:] {
		nodes = append(nodes, &Node{Name: n})
	}
	tr := newTree(nodes)
	if !tr.Ordered() {
		t.Fatal("sorted nodes not ordered")
	}
	for _, n := range names[1:] {
		if got := tr.Find(n); got == nil || got.Name != n {
			t.Errorf("Find(%q) = %v", n, got)
		}
	}
	for _, n := range []string{"", "0", "a\x01", "c", "\xfe", "\xff\xff"} {
		if tr.Find(n) != nil {
			t.Errorf("Find(%q) found something", n)
		}
	}
	// Out of order and duplicated: a scan still finds every name (the first
	// of a duplicate), where binary search would miss "a".
	tr = newTree([]*Node{{Name: "b"}, {Name: "c"}, {Name: "a", Size: 1}, {Name: "a", Size: 2}})
	if tr.Ordered() {
		t.Fatal("unordered tree reported ordered")
	}
	if n := tr.Find("a"); n == nil || n.Size != 1 {
		t.Errorf("Find(a) in unordered tree = %v", n)
	}
	if tr.Find("d") != nil {
		t.Error("found a missing name")
	}
	if newTree([]*Node{{Name: "a"}, {Name: "a"}}).Ordered() {
		t.Error("duplicate names reported ordered")
	}
}

// The IDs decoded for one tree share memory; appending to one node's content
// must not change another's.
func TestDecodedContentIsolated(t *testing.T) {
	a, b := blob.Hash([]byte("a")), blob.Hash([]byte("b"))
	enc, err := Encode([]*Node{
		{Name: "1", Type: TypeFile, Content: []blob.ID{a}},
		{Name: "2", Type: TypeFile, Content: []blob.ID{b, b}},
		{Name: "3", Type: TypeDir, Subtree: &a},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	n := tr.Nodes()
	n[0].Content = append(n[0].Content, a, a, a)
	if n[1].Content[0] != b || n[1].Content[1] != b || *n[2].Subtree != a {
		t.Fatalf("append to one node's content changed another: %v %v", n[1].Content, n[2].Subtree)
	}
}
