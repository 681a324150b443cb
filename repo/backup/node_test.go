package backup

import (
	"bytes"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/sources"
)

// An empty xattr value is stored as restic stores it: "" (restic reads it
// as an empty, non-nil slice), never null, whether the source hands over
// an empty or a nil slice. A null would give the tree another ID than
// restic's, so restic would store the directory again.
func TestNodeEmptyXattrEncodesLikeRestic(t *testing.T) {
	for _, v := range [][]byte{nil, {}} {
		e := &sources.Entry{Path: "f", Type: sources.File, Mode: 0o644, ModTime: time.Unix(1, 0),
			Xattrs: []sources.Xattr{{Name: "user.empty", Value: v}, {Name: "user.x", Value: []byte("x")}}}
		n := newNode(e, &Options{Location: time.UTC})
		if n.ExtendedAttributes[0].Value == nil {
			t.Errorf("source value %#v: node value is nil", v)
		}
		buf, err := tree.Encode([]*tree.Node{n})
		if err != nil {
			t.Fatal(err)
		}
		want := []byte(`"extended_attributes":[{"name":"user.empty","value":""},{"name":"user.x","value":"eA=="}]`)
		if !bytes.Contains(buf, want) {
			t.Errorf("source value %#v: tree\n%s\nlacks %s", v, buf, want)
		}
	}
}
