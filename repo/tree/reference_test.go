package tree

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// refMarshalNode encodes a node the way restic 0.19.1's Node.MarshalJSON
// does, through encoding/json and the refNode struct tags: clamp the years,
// quote the name, fill linktarget_raw for an invalid UTF-8 target. It is a
// json.Marshaler so that json.Marshal also applies its outer compaction, as it
// does for restic's node.
type refMarshalNode Node

func (rn refMarshalNode) MarshalJSON() ([]byte, error) {
	n := Node(rn)
	q := strconv.Quote(n.Name)
	r := refNode{
		Name: q[1 : len(q)-1], Type: n.Type, Mode: n.Mode,
		ModTime: refFixTime(n.ModTime), AccessTime: refFixTime(n.AccessTime),
		ChangeTime: refFixTime(n.ChangeTime),
		UID:        n.UID, GID: n.GID, User: n.User, Group: n.Group,
		Inode: n.Inode, DeviceID: n.DeviceID, Size: n.Size, Links: n.Links,
		LinkTarget: n.LinkTarget, GenericAttributes: n.GenericAttributes,
		Device: n.Device, Error: n.Error,
	}
	if !utf8.ValidString(n.LinkTarget) {
		r.LinkTargetRaw = []byte(n.LinkTarget)
	}
	if n.ExtendedAttributes != nil {
		r.ExtendedAttributes = make([]refAttr, len(n.ExtendedAttributes))
		for i, a := range n.ExtendedAttributes {
			r.ExtendedAttributes[i] = refAttr(a)
		}
	}
	if n.Content != nil {
		r.Content = make([]refID, len(n.Content))
		for i, id := range n.Content {
			r.Content[i] = refID(id)
		}
	}
	if n.Subtree != nil {
		id := refID(*n.Subtree)
		r.Subtree = &id
	}
	return json.Marshal(r)
}

// refFixTime is written independently of clampYear on purpose, from restic's
// description: only the year changes, to 0 or 9999.
func refFixTime(t time.Time) time.Time {
	y := t.Year()
	if y < 0 {
		return t.AddDate(-y, 0, 0)
	}
	if y > 9999 {
		return t.AddDate(9999-y, 0, 0)
	}
	return t
}

// refEncode is restic's TreeJSONBuilder over refMarshalNode.
func refEncode(nodes []*Node) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"nodes":[`)
	last := ""
	for i, n := range nodes {
		if n.Name <= last {
			return nil, fmt.Errorf("node %q, last %q: %w", n.Name, last, ErrNotOrdered)
		}
		last = n.Name
		b, err := json.Marshal((*refMarshalNode)(n))
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	buf.WriteString("]}\n")
	return buf.Bytes(), nil
}
