package restore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/internal/fixtures"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/restore"
)

// Every snapshot of every restic-made fixture repository restores to
// exactly what its listing describes: the same entries and nothing else,
// with type, mode, size, mtime, content hash and link target.
func TestRestoreFixtureRepositories(t *testing.T) {
	names, err := fixtures.Names()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 5 {
		t.Fatalf("only %d fixtures", len(names))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir, l := fixtures.Unpack(t, name)
			be, err := local.Open(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			r, err := repo.Open(ctx, be, l.Password, repo.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range l.Snapshots {
				sn, _, err := r.FindSnapshot(ctx, want.ID, nil)
				if err != nil {
					t.Fatal(err)
				}
				target := filepath.Join(t.TempDir(), "t")
				res, err := restore.Run(ctx, r, sn, "", restore.Options{Target: target, Verify: true})
				if err != nil {
					t.Fatalf("snapshot %s: %v %v", want.ID[:8], err, res.Failures)
				}
				checkListing(t, target, want)
				if res.Verified != res.FilesRestored || res.FilesRestored == 0 {
					t.Errorf("verified %d of %d files", res.Verified, res.FilesRestored)
				}
			}
		})
	}
}

func checkListing(t *testing.T, target string, want fixtures.Snapshot) {
	t.Helper()
	seen := map[string]bool{}
	for _, n := range want.Nodes {
		rel, err := n.RealPath()
		if err != nil {
			t.Fatal(err)
		}
		seen[rel] = true
		p := filepath.Join(target, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", n.Path, err)
			continue
		}
		mode := fs.FileMode(n.Mode)
		const bits = fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
		if mode&fs.ModeSymlink == 0 && fi.Mode()&bits != mode&bits || fi.Mode().Type() != mode.Type() {
			t.Errorf("%s: mode %v, want %v", n.Path, fi.Mode(), mode)
		}
		if !fi.ModTime().Equal(n.MTime) {
			t.Errorf("%s: mtime %v, want %v", n.Path, fi.ModTime(), n.MTime)
		}
		switch n.Type {
		case "file":
			data, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s: %v", n.Path, err)
				continue
			}
			sum := sha256.Sum256(data)
			if uint64(len(data)) != n.Size || hex.EncodeToString(sum[:]) != n.SHA256 {
				t.Errorf("%s: %d bytes with sha256 %x, want %d bytes %s", n.Path, len(data), sum, n.Size, n.SHA256)
			}
		case "symlink":
			if got, err := os.Readlink(p); err != nil || got != n.LinkTarget {
				t.Errorf("%s: link target %q (%v), want %q", n.Path, got, err, n.LinkTarget)
			}
		}
	}
	_ = filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(target, p)
		if err == nil && rel != "." && !seen[filepath.ToSlash(rel)] {
			t.Errorf("unexpected %s", rel)
		}
		return nil
	})
}
