package tree

import (
	"bytes"
	"testing"
)

// The golden trees are restic 0.19.1's own blobs, copied from
// shared/spec/testdata/golden-manifest.md (file name = blob ID).
func TestGoldenTrees(t *testing.T) {
	files := readTestdata(t, "golden")
	if len(files) != 3 {
		t.Fatalf("want the 3 golden trees, have %d", len(files))
	}
	for name, buf := range files {
		t.Run(name[:8], func(t *testing.T) {
			checkRoundTrip(t, buf, mustID(t, name))
		})
	}
}

// The big golden tree holds the awkward cases; check that decoding gives the
// raw values, not the encoded ones.
func TestGoldenTreeValues(t *testing.T) {
	const id = "dc51ed5bedae53ea41bda68b32976b282b0e61aebb932ea126ee521adf6cebc0"
	tr := checkRoundTrip(t, readTestdata(t, "golden")[id], mustID(t, id))
	if tr.Len() != 13 || !tr.Ordered() {
		t.Fatalf("got %d nodes, ordered %v", tr.Len(), tr.Ordered())
	}
	for _, name := range []string{"bad\xffutf8", `quote"back\slash`, "html<&>", "ünïcödé"} {
		if tr.Find(name) == nil {
			t.Errorf("Find(%q) = nil", name)
		}
	}
	empty := tr.Find("empty.txt")
	if empty.Content == nil || len(empty.Content) != 0 || empty.Size != 0 {
		t.Errorf("empty file: content %v (nil %v), size %d", empty.Content, empty.Content == nil, empty.Size)
	}
	if fifo := tr.Find("fifo"); fifo.Content != nil || fifo.Type != TypeFifo || fifo.Mode != 33554852 {
		t.Errorf("fifo: %+v", fifo)
	}
	if cd := tr.Find("chardev"); cd.Device != 259 || cd.Type != TypeCharDev {
		t.Errorf("chardev: %+v", cd)
	}
	h1, h2 := tr.Find("hard1"), tr.Find("hard2")
	if h1.Inode != h2.Inode || h1.Links != 2 || h1.Content[0] != h2.Content[0] {
		t.Errorf("hard links differ: %+v %+v", h1, h2)
	}
	x := tr.Find("xattrfile")
	if len(x.ExtendedAttributes) != 1 || x.ExtendedAttributes[0].Name != "user.foo" || string(x.ExtendedAttributes[0].Value) != "bar" {
		t.Errorf("xattrs: %+v", x.ExtendedAttributes)
	}
	if l := tr.Find("link"); l.LinkTarget != "hello.txt" || l.LinkTargetRaw() != nil {
		t.Errorf("link: %+v", l)
	}
	sub := tr.Find("sub")
	if sub.Subtree == nil || *sub.Subtree != mustID(t, "9b34602855c44ae23b2bbb1e397c6ec55ec5717345c02df1d24613a761747080") {
		t.Errorf("sub.Subtree = %v", sub.Subtree)
	}
	if got := sub.ModTime.Format("2006-01-02T15:04:05.999999999Z07:00"); got != "2024-01-02T03:04:05.5Z" {
		t.Errorf("sub mtime %s", got)
	}
	if tr.Find("missing") != nil || tr.Find("") != nil || tr.Find("a") != nil || tr.Find("zzzz") != nil {
		t.Error("Find returned a node for a missing name")
	}
}

func TestEmptyTree(t *testing.T) {
	const want = "{\"nodes\":[]}\n"
	const wantID = "ac08ce34ba4f8123618661bef2425f7028ffb9ac740578a3ee88684d2523fee8"
	enc, err := Encode(nil)
	if err != nil || string(enc) != want {
		t.Fatalf("Encode(nil) = %q, %v", enc, err)
	}
	var b Builder
	if got := b.Finish(); string(got) != want {
		t.Fatalf("zero Builder Finish = %q", got)
	}
	if EmptyID().String() != wantID || ID(enc).String() != wantID {
		t.Fatalf("EmptyID %s, ID %s", EmptyID(), ID(enc))
	}
	tr, err := Decode(enc)
	if err != nil || tr.Len() != 0 || !tr.Ordered() || tr.Find("x") != nil {
		t.Fatalf("Decode(empty) = %v, %v", tr, err)
	}
	// A Builder is reusable after Finish and returns independent slices.
	if err := b.Add(&Node{Name: "a", Type: TypeFile, Content: nil}); err != nil {
		t.Fatal(err)
	}
	one := b.Finish()
	two := b.Finish()
	if string(two) != want || bytes.Equal(one, two) || b.Len() != 0 {
		t.Fatalf("after reuse: %q then %q", one, two)
	}
}
