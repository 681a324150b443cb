package dump_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/dump"
	"github.com/cairn-backup/cairn/repo/tree"
)

// memRepo holds trees and data blobs in memory.
type memRepo struct {
	trees map[blob.ID][]byte
	data  map[blob.ID][]byte
	fail  blob.ID // a data blob whose load fails
}

func newMemRepo() *memRepo {
	return &memRepo{trees: map[blob.ID][]byte{}, data: map[blob.ID][]byte{}}
}

func (m *memRepo) LoadTree(_ context.Context, id blob.ID) (*tree.Tree, error) {
	buf, ok := m.trees[id]
	if !ok {
		return nil, fmt.Errorf("tree %s not found", id.Str())
	}
	return tree.Decode(buf)
}

func (m *memRepo) LoadBlob(_ context.Context, _ blob.Type, id blob.ID, _ []byte) ([]byte, error) {
	if id == m.fail {
		return nil, errors.New("damaged blob")
	}
	buf, ok := m.data[id]
	if !ok {
		return nil, fmt.Errorf("blob %s not found", id.Str())
	}
	return buf, nil
}

// tree encodes nodes (the tests' own, so an error is a bug) and stores them.
func (m *memRepo) tree(nodes ...*tree.Node) blob.ID {
	buf, err := tree.Encode(nodes)
	if err != nil {
		panic(err)
	}
	id := tree.ID(buf)
	m.trees[id] = buf
	return id
}

var mtime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// file stores content in chunks of at most n bytes and returns its node.
func (m *memRepo) file(name, content string, n int) *tree.Node {
	ids := []blob.ID{}
	for len(content) > 0 {
		c := content[:min(n, len(content))]
		content = content[len(c):]
		id := blob.Hash([]byte(c))
		m.data[id] = []byte(c)
		ids = append(ids, id)
	}
	size := uint64(0)
	for _, id := range ids {
		size += uint64(len(m.data[id]))
	}
	return &tree.Node{Name: name, Type: tree.TypeFile, Mode: 0o640, ModTime: mtime, AccessTime: mtime, ChangeTime: mtime,
		UID: 1000, GID: 100, User: "me", Group: "users", Size: size, Content: ids}
}

func dirNode(name string, sub blob.ID, mode fs.FileMode) *tree.Node {
	return &tree.Node{Name: name, Type: tree.TypeDir, Mode: fs.ModeDir | mode, ModTime: mtime, AccessTime: mtime, ChangeTime: mtime, Subtree: &sub}
}

func TestWriteFileInOrder(t *testing.T) {
	m := newMemRepo()
	var content strings.Builder
	for i := range 500 {
		fmt.Fprintf(&content, "line %d\n", i)
	}
	n := m.file("f", content.String(), 7)
	for _, workers := range []int{0, 1, 3, 64} {
		var out bytes.Buffer
		if err := dump.New(m, &out, dump.Options{Workers: workers}).WriteFile(context.Background(), n); err != nil {
			t.Fatal(err)
		}
		if out.String() != content.String() {
			t.Errorf("workers %d: content differs", workers)
		}
	}
	m.fail = n.Content[100]
	err := dump.New(m, io.Discard, dump.Options{}).WriteFile(context.Background(), n)
	if err == nil || !strings.Contains(err.Error(), "damaged blob") {
		t.Errorf("damaged blob: %v", err)
	}
}

func TestTarHeaders(t *testing.T) {
	m := newMemRepo()
	x := m.file("x", "xattrs here", 100)
	acl := []byte{2, 0, 0, 0}
	for _, e := range [][3]uint32{{0x01, 6, 0}, {0x02, 4, 1234}, {0x04, 4, 0}, {0x10, 7, 0}, {0x20, 0, 0}} {
		acl = binary.LittleEndian.AppendUint16(acl, uint16(e[0]))
		acl = binary.LittleEndian.AppendUint16(acl, uint16(e[1]))
		acl = binary.LittleEndian.AppendUint32(acl, e[2])
	}
	x.ExtendedAttributes = []tree.ExtendedAttribute{
		{Name: "user.note", Value: []byte("v")},
		{Name: "system.posix_acl_access", Value: acl},
		{Name: "system.posix_acl_default", Value: []byte{1, 2, 3}}, // unparsable: left out
	}
	x.Mode |= fs.ModeSetuid | fs.ModeSticky
	sub := m.tree(
		&tree.Node{Name: "link", Type: tree.TypeSymlink, Mode: fs.ModeSymlink | 0o777, ModTime: mtime, LinkTarget: "x"},
		&tree.Node{Name: "pipe", Type: tree.TypeFifo, Mode: fs.ModeNamedPipe | 0o644, ModTime: mtime},
		x)
	root := m.tree(dirNode("d", sub, 0o750), &tree.Node{Name: "top-pipe", Type: tree.TypeFifo, Mode: fs.ModeNamedPipe | 0o600, ModTime: mtime})

	var out bytes.Buffer
	if err := dump.New(m, &out, dump.Options{}).WriteTree(context.Background(), root, "/base", dump.Tar); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&out)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %c %o %d", h.Name, h.Typeflag, h.Mode, h.Size))
		if h.Name == "base/d/x" {
			if h.Uid != 1000 || h.Uname != "me" || h.Gname != "users" || !h.ModTime.Equal(mtime) {
				t.Errorf("x: %+v", h)
			}
			want := "user::rw-\nuser:1234:r--\ngroup::r--\nmask::rwx\nother::---\n"
			if h.PAXRecords["SCHILY.xattr.user.note"] != "v" || h.PAXRecords["SCHILY.acl.access"] != want {
				t.Errorf("x: PAX records %q", h.PAXRecords)
			}
			if _, ok := h.PAXRecords["SCHILY.acl.default"]; ok {
				t.Error("an unparsable ACL was archived")
			}
		}
	}
	// Below the top only files, directories and symlinks; at the top
	// everything (a fifo as an entry without type, like restic).
	want := []string{"base/d/ 5 750 0", "base/d/link 2 777 0", "base/d/x 0 5640 11", "base/top-pipe 0 600 0"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFormatLinuxACL(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
		err  bool
	}{
		{[]byte{2, 0, 0, 0}, "", false},
		{[]byte{2, 0, 0, 0, 0x20, 0, 5, 0, 0, 0, 0, 0}, "other::r-x\n", false},
		{[]byte{2, 0, 0, 0, 0x08, 0, 2, 0, 0xff, 0xff, 0xff, 0xff}, "group:4294967295:-w-\n", false},
		{[]byte{1, 0, 0, 0}, "", true},                            // version
		{[]byte{2, 0, 0}, "", true},                               // short
		{[]byte{2, 0, 0, 0, 1}, "", true},                         // partial entry
		{[]byte{2, 0, 0, 0, 0x40, 0, 7, 0, 0, 0, 0, 0}, "", true}, // tag
	} {
		got, err := dump.FormatLinuxACL(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%x: %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// Write a directory of a snapshot as a tar archive, the way
// `restic dump snapshot /docs` does.
func Example() {
	m := newMemRepo()
	docs := m.tree(m.file("a.txt", "hello\n", 4), m.file("b.txt", "world\n", 4))
	root := m.tree(dirNode("docs", docs, 0o755))

	var archive bytes.Buffer
	d := dump.New(m, &archive, dump.Options{})
	if err := d.WriteTree(context.Background(), root, "/", dump.Tar); err != nil {
		fmt.Println(err)
		return
	}
	tr := tar.NewReader(&archive)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		fmt.Println(h.Name, h.Size)
	}
	// A single file is written as it is.
	sub, _ := m.LoadTree(context.Background(), docs)
	_ = d.WriteFile(context.Background(), sub.Find("b.txt")) // to the archive buffer here
	_, _ = io.Copy(os.Stdout, &archive)
	// Output:
	// docs/ 0
	// docs/a.txt 6
	// docs/b.txt 6
	// world
}
