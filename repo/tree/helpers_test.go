package tree

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/blob"
)

// mustID parses a hex ID or fails the test.
func mustID(t testing.TB, s string) blob.ID {
	t.Helper()
	id, err := blob.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func idPtr(id blob.ID) *blob.ID { return &id }

// diffNodes describes the first difference between two decoded nodes,
// including what Equal ignores on purpose; "" means identical. Two decoders
// must also agree on each time's Location (by name: Local, UTC or a fixed
// zone); a re-encoded tree need not, since "+00:00" comes back as "Z".
func diffNodes(a, b *Node) string { return diffNodesLoc(a, b, true) }

func diffNodesLoc(a, b *Node, sameLocation bool) string {
	if (a == nil) != (b == nil) {
		return fmt.Sprintf("nil %v vs %v", a == nil, b == nil)
	}
	if a == nil {
		return ""
	}
	if !a.Equal(b) {
		return fmt.Sprintf("not Equal:\n%#v\n%#v", *a, *b)
	}
	// Equal treats these pairs alike only if the encoding is alike; the
	// decoders must agree on them exactly.
	if (a.ExtendedAttributes == nil) != (b.ExtendedAttributes == nil) {
		return "extended_attributes nil vs empty"
	}
	if (a.GenericAttributes == nil) != (b.GenericAttributes == nil) {
		return "generic_attributes nil vs empty"
	}
	for _, p := range [][2]time.Time{{a.ModTime, b.ModTime}, {a.AccessTime, b.AccessTime}, {a.ChangeTime, b.ChangeTime}} {
		if sameLocation && p[0] != p[1] && p[0].Location().String() != p[1].Location().String() {
			return fmt.Sprintf("time location %v vs %v", p[0].Location(), p[1].Location())
		}
	}
	return ""
}

func diffTrees(a, b *Tree) string { return diffTreesLoc(a, b, true) }

func diffTreesLoc(a, b *Tree, sameLocation bool) string {
	if a.Len() != b.Len() {
		return fmt.Sprintf("%d vs %d nodes", a.Len(), b.Len())
	}
	if a.Ordered() != b.Ordered() {
		return "ordered flag differs"
	}
	for i := range a.Nodes() {
		if d := diffNodesLoc(a.Nodes()[i], b.Nodes()[i], sameLocation); d != "" {
			return fmt.Sprintf("node %d: %s", i, d)
		}
	}
	return ""
}

// readTestdata returns the files in testdata/dir, keyed by name.
func readTestdata(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata", dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	if len(out) == 0 {
		t.Fatalf("no files in testdata/%s", dir)
	}
	return out
}

// checkRoundTrip decodes buf with both decoders, re-encodes with both
// encoders and requires every result to equal buf, and the ID to be want.
func checkRoundTrip(t *testing.T, buf []byte, want blob.ID) *Tree {
	t.Helper()
	if got := ID(buf); got != want {
		t.Fatalf("fixture hash %s, want %s", got, want)
	}
	fast, ok := decodeFast(buf)
	if !ok {
		t.Fatalf("fast decoder gave up on restic's own output")
	}
	ref, err := decodeReference(buf)
	if err != nil {
		t.Fatalf("reference decode: %v", err)
	}
	if d := diffTrees(fast, ref); d != "" {
		t.Fatalf("fast and reference decoders differ: %s", d)
	}
	enc, err := Encode(fast.Nodes())
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if !bytes.Equal(enc, buf) {
		t.Fatalf("re-encoded tree differs\n got %s\nwant %s", enc, buf)
	}
	refEnc, err := refEncode(fast.Nodes())
	if err != nil {
		t.Fatalf("refEncode: %v", err)
	}
	if !bytes.Equal(refEnc, buf) {
		t.Fatalf("reference encoder differs from restic\n got %s\nwant %s", refEnc, buf)
	}
	if ID(enc) != want {
		t.Fatalf("ID %s, want %s", ID(enc), want)
	}
	return fast
}
