package walk_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/repo/walk"
)

// memTrees is a TreeLoader over encoded trees held in memory.
type memTrees map[blob.ID][]byte

func (m memTrees) LoadTree(_ context.Context, id blob.ID) (*tree.Tree, error) {
	buf, ok := m[id]
	if !ok {
		return nil, fmt.Errorf("tree %s not found", id.Str())
	}
	return tree.Decode(buf)
}

// add encodes a tree of nodes and returns its ID. The nodes are the
// tests' own, so failing to encode them is a bug in the test.
func (m memTrees) add(nodes ...*tree.Node) blob.ID {
	buf, err := tree.Encode(nodes)
	if err != nil {
		panic(err)
	}
	id := tree.ID(buf)
	m[id] = buf
	return id
}

var mtime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func file(name string, content ...blob.ID) *tree.Node {
	if content == nil {
		content = []blob.ID{}
	}
	return &tree.Node{Name: name, Type: tree.TypeFile, Mode: 0o644, ModTime: mtime, AccessTime: mtime, ChangeTime: mtime, Content: content}
}

func dir(name string, sub blob.ID) *tree.Node {
	return &tree.Node{Name: name, Type: "dir", Mode: fs.ModeDir | 0o755, ModTime: mtime, AccessTime: mtime, ChangeTime: mtime, Subtree: &sub}
}

// fixture: / { a/ { x, y/ { z } }, b, c }
func fixture() (memTrees, blob.ID, blob.ID) {
	m := memTrees{}
	y := m.add(file("z", blob.Hash([]byte("z"))))
	a := m.add(file("x", blob.Hash([]byte("x1")), blob.Hash([]byte("x2"))), dir("y", y))
	root := m.add(dir("a", a), file("b", blob.Hash([]byte("x1"))), file("c"))
	return m, root, y
}

func paths(t *testing.T, m memTrees, root blob.ID, visit func(p string, n *tree.Node) error) ([]string, error) {
	var got []string
	err := walk.Walk(context.Background(), m, root, func(_ blob.ID, p string, n *tree.Node, loadErr error) error {
		if loadErr != nil {
			return loadErr
		}
		got = append(got, p)
		if n == nil || visit == nil {
			return nil
		}
		return visit(p, n)
	})
	return got, err
}

func TestWalkOrderAndSkip(t *testing.T) {
	m, root, y := fixture()
	for _, tc := range []struct {
		name string
		skip string // the path for which the visitor returns SkipNode
		want []string
	}{
		{"all", "", []string{"/", "/a", "/a/x", "/a/y", "/a/y/z", "/b", "/c"}},
		{"skip a directory's contents", "/a/y", []string{"/", "/a", "/a/x", "/a/y", "/b", "/c"}},
		{"a file skips the rest of its directory", "/a/x", []string{"/", "/a", "/a/x", "/b", "/c"}},
		{"skip at the top", "/b", []string{"/", "/a", "/a/x", "/a/y", "/a/y/z", "/b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := paths(t, m, root, func(p string, _ *tree.Node) error {
				if p == tc.skip {
					return walk.SkipNode
				}
				return nil
			})
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("got %v (%v), want %v", got, err, tc.want)
			}
		})
	}

	// A subtree that cannot be loaded is reported with its directory; a
	// visitor that accepts it goes on without it.
	delete(m, y)
	var failed []string
	err := walk.Walk(context.Background(), m, root, func(_ blob.ID, p string, _ *tree.Node, loadErr error) error {
		if loadErr != nil {
			failed = append(failed, p)
		}
		return nil
	})
	if err != nil || !slices.Equal(failed, []string{"/a/y"}) {
		t.Errorf("load failures %v, err %v", failed, err)
	}
	if _, err := paths(t, m, root, nil); err == nil {
		t.Error("a visitor returning the load error did not end the walk")
	}
	stop := errors.New("stop")
	if _, err := paths(t, m, root, func(string, *tree.Node) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("visitor error: %v", err)
	}
}

func TestUsedBlobs(t *testing.T) {
	m, root, y := fixture()
	set := map[blob.Handle]struct{}{}
	if err := walk.UsedBlobs(context.Background(), m, []blob.ID{root, root}, set); err != nil {
		t.Fatal(err)
	}
	// 3 trees and 3 distinct data blobs (x1 is used twice).
	if len(set) != 6 {
		t.Errorf("%d blobs: %v", len(set), set)
	}
	for _, h := range []blob.Handle{{ID: root, Type: blob.TreeBlob}, {ID: y, Type: blob.TreeBlob}, {ID: blob.Hash([]byte("z")), Type: blob.DataBlob}} {
		if _, ok := set[h]; !ok {
			t.Errorf("%v missing", h)
		}
	}
	delete(m, y)
	if err := walk.UsedBlobs(context.Background(), m, []blob.ID{root}, map[blob.Handle]struct{}{}); err == nil {
		t.Error("a missing tree was not reported")
	}
}

// List every path of a snapshot's tree, leaving out one directory's
// contents.
func ExampleWalk() {
	m := memTrees{}
	sub := m.add(file("inner"))
	root := m.add(dir("cache", sub), dir("docs", sub), file("readme"))
	err := walk.Walk(context.Background(), m, root, func(_ blob.ID, p string, n *tree.Node, loadErr error) error {
		if loadErr != nil {
			return loadErr
		}
		fmt.Println(p)
		if p == "/cache" {
			return walk.SkipNode
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// /
	// /cache
	// /docs
	// /docs/inner
	// /readme
}
