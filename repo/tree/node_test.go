package tree

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/blob"
)

func fullNode() *Node {
	st := id2
	return &Node{Name: "n", Type: TypeFile, Mode: 0o644, ModTime: t0, AccessTime: t0, ChangeTime: t0.Add(time.Second),
		UID: 1, GID: 2, User: "u", Group: "g", Inode: 3, DeviceID: 4, Size: 5, Links: 6, LinkTarget: "l",
		ExtendedAttributes: []ExtendedAttribute{{"a", []byte("1")}, {"b", []byte{}}},
		GenericAttributes:  map[string]json.RawMessage{"k": json.RawMessage(`1`), "n": nil},
		Device:             7, Content: []blob.ID{id1, id2}, Subtree: &st, Error: "e"}
}

// Every field takes part in Equal, and Equal holds exactly when the encoding
// is the same for these changes.
func TestEqual(t *testing.T) {
	if !fullNode().Equal(fullNode()) {
		t.Fatal("identical nodes not Equal")
	}
	var nilNode *Node
	if !nilNode.Equal(nil) || nilNode.Equal(fullNode()) || fullNode().Equal(nil) {
		t.Fatal("nil handling")
	}
	later := t0.Add(time.Nanosecond)
	changes := map[string]func(n *Node){
		"name":            func(n *Node) { n.Name = "m" },
		"type":            func(n *Node) { n.Type = TypeDir },
		"mode":            func(n *Node) { n.Mode |= fs.ModeSetuid },
		"mtime":           func(n *Node) { n.ModTime = later },
		"atime":           func(n *Node) { n.AccessTime = later },
		"ctime":           func(n *Node) { n.ChangeTime = later },
		"mtime zone":      func(n *Node) { n.ModTime = t0.In(time.FixedZone("", 3600)) },
		"uid":             func(n *Node) { n.UID++ },
		"gid":             func(n *Node) { n.GID++ },
		"user":            func(n *Node) { n.User = "v" },
		"group":           func(n *Node) { n.Group = "" },
		"inode":           func(n *Node) { n.Inode++ },
		"device_id":       func(n *Node) { n.DeviceID++ },
		"size":            func(n *Node) { n.Size++ },
		"links":           func(n *Node) { n.Links++ },
		"linktarget":      func(n *Node) { n.LinkTarget = "l\xff" },
		"xattr value":     func(n *Node) { n.ExtendedAttributes[0].Value = []byte("2") },
		"xattr nil value": func(n *Node) { n.ExtendedAttributes[1].Value = nil },
		"xattr name":      func(n *Node) { n.ExtendedAttributes[1].Name = "c" },
		"xattr order":     func(n *Node) { x := n.ExtendedAttributes; x[0], x[1] = x[1], x[0] },
		"xattr count":     func(n *Node) { n.ExtendedAttributes = n.ExtendedAttributes[:1] },
		"generic value":   func(n *Node) { n.GenericAttributes["k"] = json.RawMessage(`2`) },
		"generic nil":     func(n *Node) { n.GenericAttributes["k"] = nil },
		"generic key":     func(n *Node) { delete(n.GenericAttributes, "n"); n.GenericAttributes["o"] = nil },
		"generic count":   func(n *Node) { n.GenericAttributes = nil },
		"device":          func(n *Node) { n.Device++ },
		"content id":      func(n *Node) { n.Content[1] = id1 },
		"content length":  func(n *Node) { n.Content = n.Content[:1] },
		"content nil":     func(n *Node) { n.Content = nil },
		"subtree":         func(n *Node) { n.Subtree = &id1 },
		"subtree nil":     func(n *Node) { n.Subtree = nil },
		"error":           func(n *Node) { n.Error = "" },
	}
	for name, change := range changes {
		a, b := fullNode(), fullNode()
		change(b)
		if a.Equal(b) || b.Equal(a) {
			t.Errorf("%s: still Equal", name)
		}
		ea, err1 := Encode([]*Node{a})
		eb, err2 := Encode([]*Node{b})
		if err1 != nil || err2 != nil || bytes.Equal(ea, eb) {
			t.Errorf("%s: encodes the same (%v, %v)", name, err1, err2)
		}
	}
	// Content nil vs empty differs in the encoding, so in Equal.
	a, b := fullNode(), fullNode()
	a.Content, b.Content = nil, []blob.ID{}
	if a.Equal(b) {
		t.Error("nil and empty content Equal")
	}
}

// What Equal treats as the same: the same instant and offset in different
// Locations, or a monotonic reading; each encodes identically.
func TestEqualTimes(t *testing.T) {
	same := [][2]time.Time{
		{t0, t0.In(time.FixedZone("GMT", 0))},
		{t0.In(time.FixedZone("", -5*3600)), t0.In(time.FixedZone("EST", -5*3600))},
		{time.Date(2024, 1, 1, 0, 0, 0, 0, nyc), time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", -5*3600))},
		{time.Now(), time.Time{}}, // filled in below
		{time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(12000, 1, 1, 0, 0, 0, 0, time.FixedZone("", 0))},
	}
	same[3][1] = same[3][0].Round(0) // strip the monotonic reading
	for _, p := range same {
		a, b := fullNode(), fullNode()
		a.ModTime, b.ModTime = p[0], p[1]
		ea, _ := Encode([]*Node{a})
		eb, _ := Encode([]*Node{b})
		if !a.Equal(b) || !bytes.Equal(ea, eb) {
			t.Errorf("%v and %v: Equal %v, same encoding %v", p[0], p[1], a.Equal(b), bytes.Equal(ea, eb))
		}
	}
	// Same instant, different offset: different bytes, not Equal.
	a, b := fullNode(), fullNode()
	b.ModTime = t0.In(nyc)
	if a.Equal(b) {
		t.Error("UTC and New York time Equal")
	}
	// Clamped years in different Locations compare by their encoding.
	a.ModTime = time.Date(-3, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ModTime = time.Date(-3, 1, 1, 0, 0, 0, 0, time.FixedZone("", 0))
	if !a.Equal(b) {
		t.Error("equal clamped times not Equal")
	}
}
