//go:build linux

package restore_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backup"
	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/sources/local"
)

// Back up a directory and restore it somewhere else. The snapshot records
// the directory under its absolute path; restoring that path as the
// subfolder puts its contents straight into the target.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "restore-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "src")
	for name, content := range map[string]string{"docs/a.txt": "alpha\n", "docs/sub/b.txt": "beta\n"} {
		p := filepath.Join(src, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.WriteFile(p, []byte(content), 0o644)
	}

	// A cheap key derivation keeps the example fast; real repositories
	// leave Params unset.
	r, err := repo.Init(ctx, mem.New(), "secret", repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := local.New([]string{src}, local.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	b, err := backup.Run(ctx, r, s, backup.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}

	target := filepath.Join(dir, "target")
	res, err := restore.Run(ctx, r, b.Snapshot, src, restore.Options{Target: target, Verify: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d files and %d directories restored, %d verified\n", res.FilesRestored, res.Dirs, res.Verified)
	_ = filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(target, p)
			data, _ := os.ReadFile(p)
			fmt.Printf("%s: %s", rel, data)
		}
		return nil
	})
	// Output:
	// 2 files and 2 directories restored, 2 verified
	// docs/a.txt: alpha
	// docs/sub/b.txt: beta
}
