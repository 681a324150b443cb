package backup

import (
	stdtar "archive/tar"
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/sources/tar"
)

// The backup's visitor takes hard links from tar streams without their
// content.
var _ tar.LinkVisitor = (*visitor)(nil)

func linkArchive(t *testing.T, big []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := stdtar.NewWriter(&buf)
	mt := time.Date(2022, 2, 3, 4, 5, 6, 0, time.UTC)
	add := func(h stdtar.Header, data []byte) {
		h.ModTime, h.Mode = mt, 0o644
		h.Size = int64(len(data))
		if err := w.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add(stdtar.Header{Name: "d/big", Typeflag: stdtar.TypeReg}, big) // several chunks: still in the blob workers when its links come
	add(stdtar.Header{Name: "d/small", Typeflag: stdtar.TypeReg}, []byte("small"))
	add(stdtar.Header{Name: "e/big-2", Typeflag: stdtar.TypeLink, Linkname: "d/big"}, nil)
	add(stdtar.Header{Name: "e/big-3", Typeflag: stdtar.TypeLink, Linkname: "e/big-2"}, nil) // a link to a link
	add(stdtar.Header{Name: "e/small-2", Typeflag: stdtar.TypeLink, Linkname: "d/small"}, nil)
	add(stdtar.Header{Name: "e/alone", Typeflag: stdtar.TypeReg}, []byte("alone"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Hard links in a tar stream become nodes with the first name's content,
// one made-up inode per group and the group's size as link count, as
// restic records hard links; a second run of the same stream reads
// nothing again and gives the same tree.
func TestStreamedHardLinks(t *testing.T) {
	ctx := context.Background()
	r := testRepo(t)
	big := make([]byte, 5<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	data := linkArchive(t, big)
	run := func() *Result {
		t.Helper()
		src, err := tar.New(bytes.NewReader(data), tar.Options{Paths: []string{"/d", "/e"}, Hostname: "h", Time: time.Unix(0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(ctx, r, src, Options{Location: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		if res.Warnings != 0 {
			t.Fatalf("%d warnings", res.Warnings)
		}
		return res
	}
	first := run()
	nodes := map[string]*tree.Node{}
	for _, dir := range []string{"d", "e"} {
		root, err := r.LoadTree(ctx, *first.Snapshot.Tree)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := r.LoadTree(ctx, *root.Find(dir).Subtree)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range sub.Nodes() {
			nodes[dir+"/"+n.Name] = n
		}
	}
	got := map[string][]byte{}
	readBack(t, r, *first.Snapshot.Tree, "", got)
	for p, want := range map[string][]byte{"d/big": big, "e/big-2": big, "e/big-3": big, "d/small": []byte("small"), "e/small-2": []byte("small"), "e/alone": []byte("alone")} {
		if !bytes.Equal(got[p], want) {
			t.Errorf("%s: %d bytes, want %d", p, len(got[p]), len(want))
		}
	}
	bigGroup := []string{"d/big", "e/big-2", "e/big-3"}
	smallGroup := []string{"d/small", "e/small-2"}
	for _, g := range [][]string{bigGroup, smallGroup} {
		first := nodes[g[0]]
		for _, p := range g {
			n := nodes[p]
			if n.Links != uint64(len(g)) || n.Inode != first.Inode || n.Inode == 0 || !slices.Equal(n.Content, first.Content) || n.Size != first.Size {
				t.Errorf("%s: links %d inode %d size %d, want %d links sharing inode %d", p, n.Links, n.Inode, n.Size, len(g), first.Inode)
			}
		}
	}
	if nodes["d/big"].Inode == nodes["d/small"].Inode {
		t.Error("two groups share an inode number")
	}
	if a := nodes["e/alone"]; a.Links != 0 || a.Inode != 0 {
		t.Errorf("a file without links got links %d inode %d", a.Links, a.Inode)
	}
	if s := first.Summary; s.FilesNew != 6 {
		t.Errorf("first summary %+v", s)
	}

	second := run()
	if s := second.Summary; s.FilesUnmodified != 6 || s.FilesNew != 0 || s.FilesChanged != 0 || s.DataBlobs != 0 {
		t.Errorf("second summary %+v", s)
	}
	if *second.Snapshot.Tree != *first.Snapshot.Tree {
		t.Error("the same stream gave another tree")
	}
}
