package tree_test

import (
	"fmt"
	"io/fs"
	"time"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
)

// Encode a directory listing the way restic does, then read it back.
func Example() {
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 500000000, time.UTC)
	sub := tree.EmptyID()  // an empty subdirectory needs no encoding
	nodes := []*tree.Node{ // sorted by raw name bytes
		{Name: "hello.txt", Type: tree.TypeFile, Mode: 0o644, ModTime: mtime, AccessTime: mtime, ChangeTime: mtime,
			Size: 12, Links: 1, Content: []blob.ID{blob.Hash([]byte("hello world\n"))}},
		{Name: "sub", Type: tree.TypeDir, Mode: fs.ModeDir | 0o755, ModTime: mtime, AccessTime: mtime, ChangeTime: mtime,
			Subtree: &sub},
	}
	var b tree.Builder
	for _, n := range nodes {
		if err := b.Add(n); err != nil {
			fmt.Println(err)
			return
		}
	}
	buf := b.Finish()
	fmt.Printf("%s", buf)
	fmt.Println(tree.ID(buf).Str())

	t, err := tree.Decode(buf)
	if err != nil {
		fmt.Println(err)
		return
	}
	n := t.Find("hello.txt")
	fmt.Println(n.Size, n.Equal(nodes[0]))

	// Adding a name out of order is refused.
	fmt.Println(b.Add(nodes[1]) == nil, b.Add(nodes[0]))
	// Output:
	// {"nodes":[{"name":"hello.txt","type":"file","mode":420,"mtime":"2024-01-02T03:04:05.5Z","atime":"2024-01-02T03:04:05.5Z","ctime":"2024-01-02T03:04:05.5Z","uid":0,"gid":0,"size":12,"links":1,"content":["a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"]},{"name":"sub","type":"dir","mode":2147484141,"mtime":"2024-01-02T03:04:05.5Z","atime":"2024-01-02T03:04:05.5Z","ctime":"2024-01-02T03:04:05.5Z","uid":0,"gid":0,"content":null,"subtree":"ac08ce34ba4f8123618661bef2425f7028ffb9ac740578a3ee88684d2523fee8"}]}
	// 4c26b382
	// 12 true
	// true encode tree: node "hello.txt" after "sub": nodes are not ordered or duplicate
}
