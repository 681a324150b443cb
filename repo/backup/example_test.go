//go:build linux

package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backup"
	"github.com/cairn-backup/cairn/repo/restore"
	srclocal "github.com/cairn-backup/cairn/sources/local"
)

// Back up a directory into a new repository on the local disk (one that
// restic opens too), back it up again, and restore the snapshot into
// another directory.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "backup-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "documents")
	_ = os.MkdirAll(src, 0o755)
	_ = os.WriteFile(filepath.Join(src, "note.txt"), []byte("hello from cairn\n"), 0o644)

	// The repository: restic's layout in a local directory, encrypted with
	// a key derived from the password.
	be, err := local.Create(ctx, filepath.Join(dir, "repo"))
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := repo.Init(ctx, be, "a long and secret password", repo.InitOptions{}, repo.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()

	// What to back up, and the backup itself. The second run finds the
	// first snapshot as its parent and reads no unchanged file again.
	s, err := srclocal.New([]string{src}, srclocal.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	var res *backup.Result
	for range 2 {
		res, err = backup.Run(ctx, r, s, backup.Options{Hostname: "laptop", Tags: []string{"example"}})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%d new, %d unchanged files; parent: %v\n", res.Summary.FilesNew, res.Summary.FilesUnmodified, res.ParentID != nil)
	}

	// Restore the backed-up directory (its path in the snapshot) into
	// another directory.
	target := filepath.Join(dir, "restored")
	if _, err := restore.Run(ctx, r, res.Snapshot, src, restore.Options{Target: target}); err != nil {
		fmt.Println(err)
		return
	}
	data, err := os.ReadFile(filepath.Join(target, "note.txt"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(data))
	// Output:
	// 1 new, 0 unchanged files; parent: false
	// 0 new, 1 unchanged files; parent: true
	// hello from cairn
}
