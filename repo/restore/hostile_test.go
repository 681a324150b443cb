package restore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/repo/tree"
)

// treeWriter stores hand-made blobs and trees, including trees that no
// well-behaved writer produces (unsorted, duplicate or hostile names).
type treeWriter struct {
	t *testing.T
	r *repo.Repository
	w *repo.BlobWriter
}

func newTreeWriter(t *testing.T, r *repo.Repository) *treeWriter {
	t.Helper()
	w, err := r.NewBlobWriter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &treeWriter{t: t, r: r, w: w}
}

func (tw *treeWriter) data(content string) blob.ID {
	tw.t.Helper()
	id := blob.Hash([]byte(content))
	if _, err := tw.w.SaveBlob(context.Background(), blob.DataBlob, []byte(content), id); err != nil {
		tw.t.Fatal(err)
	}
	return id
}

// tree stores the nodes in the given order. Each node is encoded on its
// own; names the encoder refuses are swapped in afterwards.
func (tw *treeWriter) tree(nodes ...*tree.Node) blob.ID {
	tw.t.Helper()
	var parts [][]byte
	for _, n := range nodes {
		name := n.Name
		c := *n
		c.Name = "PLACEHOLDER"
		enc, err := tree.Encode([]*tree.Node{&c})
		if err != nil {
			tw.t.Fatal(err)
		}
		enc = bytes.TrimSuffix(bytes.TrimPrefix(enc, []byte(`{"nodes":[`)), []byte("]}\n"))
		parts = append(parts, bytes.Replace(enc, []byte(`"PLACEHOLDER"`), []byte(quoteName(name)), 1))
	}
	buf := append(append([]byte(`{"nodes":[`), bytes.Join(parts, []byte(","))...), "]}\n"...)
	if _, err := tree.Decode(buf); err != nil {
		tw.t.Fatalf("hand-made tree does not decode: %v\n%s", err, buf)
	}
	id := blob.Hash(buf)
	if _, err := tw.w.SaveBlob(context.Background(), blob.TreeBlob, buf, id); err != nil {
		tw.t.Fatal(err)
	}
	return id
}

// snapshot flushes and saves a snapshot of root; the writer can go on.
func (tw *treeWriter) snapshot(root blob.ID) *repo.Snapshot {
	tw.t.Helper()
	if err := tw.w.Flush(context.Background()); err != nil {
		tw.t.Fatal(err)
	}
	sn := &repo.Snapshot{Time: time.Now(), Tree: &root, Paths: []string{"/hostile"}}
	if _, err := tw.r.SaveSnapshot(context.Background(), sn); err != nil {
		tw.t.Fatal(err)
	}
	w, err := tw.r.NewBlobWriter(context.Background())
	if err != nil {
		tw.t.Fatal(err)
	}
	tw.w = w
	return sn
}

var t1 = time.Date(2020, 5, 6, 7, 8, 9, 10, time.UTC)

func fileNode(name string, content ...blob.ID) *tree.Node {
	size := uint64(0)
	if content == nil {
		content = []blob.ID{}
	}
	return &tree.Node{Name: name, Type: tree.TypeFile, Mode: 0o644, ModTime: t1, AccessTime: t1, Content: content, Size: size, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
}

func dirNode(name string, sub *blob.ID) *tree.Node {
	return &tree.Node{Name: name, Type: tree.TypeDir, Mode: os.ModeDir | 0o755, ModTime: t1, AccessTime: t1, Subtree: sub, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
}

// A snapshot made to attack the restorer: names that would leave the
// target, NUL bytes, duplicates, a directory without subtree, a subtree
// and a blob that do not exist, an unknown node type. Each is refused and
// reported by path; nothing is written outside the target; the honest
// entries are restored.
func TestRestoreHostileSnapshot(t *testing.T) {
	r, _ := newRepo(t, false, repo.InitOptions{})
	tw := newTreeWriter(t, r)
	fine := tw.data("fine\n")
	evil := tw.data("evil\n")
	missing := blob.Hash([]byte("never stored"))
	inner := tw.tree(fileNode("../../escape-inner", evil), fileNode("deep-ok", fine))
	weird := fileNode("weird", fine)
	weird.Type = "irregular"
	weird.Content = nil
	root := tw.tree(
		fileNode("ok", fine),
		fileNode("..", evil),
		fileNode(".", evil),
		fileNode("", evil),
		fileNode("a/b", evil),
		fileNode("../escape", evil),
		fileNode("/abs", evil),
		fileNode("nul\x00byte", evil),
		dirNode("sub", &inner),
		dirNode("gone", &missing),
		dirNode("nosubtree", nil),
		fileNode("dup", fine),
		fileNode("dup", evil),
		fileNode("unknown-blob", missing),
		weird,
	)
	sn := tw.snapshot(root)

	base := t.TempDir()
	target := filepath.Join(base, "a", "target")
	res, err := restore.Run(context.Background(), r, sn, "", restore.Options{Target: target})
	if !errors.Is(err, restore.ErrIncomplete) {
		t.Fatalf("error %v, want ErrIncomplete", err)
	}
	byPath := map[string][]error{}
	for _, f := range res.Failures {
		byPath[f.Path] = append(byPath[f.Path], f.Err)
	}
	invalid := 0
	for _, e := range byPath["/"] {
		if errors.Is(e, restore.ErrInvalidName) {
			invalid++
		}
	}
	if invalid != 7 {
		t.Errorf("%d invalid names reported at /, want 7: %v", invalid, byPath["/"])
	}
	if errs := byPath["/sub"]; len(errs) != 1 || !errors.Is(errs[0], restore.ErrInvalidName) {
		t.Errorf("/sub: %v", errs)
	}
	if errs := byPath["/dup"]; len(errs) != 1 || !errors.Is(errs[0], restore.ErrInvalidName) {
		t.Errorf("/dup: %v", errs)
	}
	if errs := byPath["/gone"]; len(errs) != 1 || !errors.Is(errs[0], repo.ErrBlobNotFound) || !strings.Contains(errs[0].Error(), missing.Str()) {
		t.Errorf("/gone: %v", errs)
	}
	if errs := byPath["/nosubtree"]; len(errs) != 1 || !strings.Contains(errs[0].Error(), "without subtree") {
		t.Errorf("/nosubtree: %v", errs)
	}
	var be *restore.BlobError
	if errs := byPath["/unknown-blob"]; len(errs) != 1 || !errors.As(errs[0], &be) || be.Blob != missing || !errors.Is(errs[0], repo.ErrBlobNotFound) {
		t.Errorf("/unknown-blob: %v", errs)
	}
	if errs := byPath["/weird"]; len(errs) != 1 || !strings.Contains(errs[0].Error(), "irregular") {
		t.Errorf("/weird: %v", errs)
	}
	if len(byPath) != 7 {
		t.Errorf("failures at %d paths, want 7: %v", len(byPath), res.Failures)
	}

	// Nothing outside the target; inside it exactly the honest entries.
	var outside []string
	_ = filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != base && !strings.HasPrefix(p+"/", target+"/") && !strings.HasPrefix(target+"/", p+"/") {
			outside = append(outside, p)
		}
		return nil
	})
	if len(outside) > 0 {
		t.Errorf("written outside the target: %v", outside)
	}
	var inside []string
	_ = filepath.WalkDir(target, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != target {
			rel, _ := filepath.Rel(target, p)
			inside = append(inside, rel)
		}
		return nil
	})
	slices.Sort(inside)
	want := []string{"dup", "gone", "ok", "sub", "sub/deep-ok"}
	if !slices.Equal(inside, want) {
		t.Errorf("target holds %q, want %q", inside, want)
	}
	for _, p := range []string{"ok", "sub/deep-ok", "dup"} {
		if b, err := os.ReadFile(filepath.Join(target, p)); err != nil || string(b) != "fine\n" {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
}

// quoteName returns the JSON string a tree stores for name, as the encoder
// writes it (strconv.Quote, then JSON escaping), for names the encoder
// itself refuses: the encoding of "x"+name minus the x.
func quoteName(name string) string {
	enc, err := tree.Encode([]*tree.Node{{Name: "x" + name, Type: tree.TypeFile, Content: []blob.ID{}}})
	if err != nil {
		panic(err)
	}
	s := string(enc)
	i := strings.Index(s, `"name":"`) + len(`"name":"`)
	j := strings.Index(s[i:], `","type"`)
	return `"` + s[i+1:i+j] + `"`
}
