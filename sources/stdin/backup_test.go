package stdin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backup"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/sources/stdin"
)

func memRepo(t *testing.T) (*repo.Repository, *mem.Backend) {
	t.Helper()
	be := mem.New()
	r, err := repo.Init(context.Background(), be, "pw", repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r, be
}

// The stream becomes restic's synthetic node, and its content reads back.
func TestBackupStoresSyntheticNode(t *testing.T) {
	ctx := context.Background()
	r, _ := memRepo(t)
	data := make([]byte, 3<<20) // several chunks
	rand.Read(data)
	src, err := stdin.New(bytes.NewReader(data), stdin.Options{Filename: "dump.sql", Time: when})
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(ctx, r, src, backup.Options{Location: when.Location()})
	if err != nil {
		t.Fatal(err)
	}
	sn := res.Snapshot
	if len(sn.Paths) != 1 || sn.Paths[0] != "/dump.sql" {
		t.Fatalf("snapshot paths %q", sn.Paths)
	}
	root, err := r.LoadTree(ctx, *sn.Tree)
	if err != nil {
		t.Fatal(err)
	}
	if root.Len() != 1 {
		t.Fatalf("root tree has %d nodes", root.Len())
	}
	n := root.Nodes()[0]
	if n.Name != "dump.sql" || n.Type != tree.TypeFile || n.Mode != 0o644 || n.Size != uint64(len(data)) ||
		!n.ModTime.Equal(when) || !n.AccessTime.Equal(when) || !n.ChangeTime.Equal(when) ||
		n.UID != uint32(os.Getuid()) || n.GID != uint32(os.Getgid()) ||
		n.User != "" || n.Group != "" || n.Inode != 0 || n.Links != 0 || n.DeviceID != 0 {
		t.Fatalf("node = %+v", n)
	}
	var got []byte
	for _, id := range n.Content {
		b, err := r.LoadBlob(ctx, blob.DataBlob, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("content read back differs")
	}
}

// A failing command leaves no snapshot behind.
func TestBackupFailsWithCommand(t *testing.T) {
	needTool(t, "sh")
	ctx := context.Background()
	r, be := memRepo(t)
	src, err := stdin.FromCommand([]string{"sh", "-c", "echo half a dump; exit 2"}, stdin.Options{Stderr: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := backup.Run(ctx, r, src, backup.Options{}); err == nil || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("backup.Run = %v, want the command's failure", err)
	}
	n := 0
	if err := be.List(ctx, backend.SnapshotFile, func(backend.FileInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d snapshots saved after a failed command", n)
	}
}

// An empty stream is a warning (exit status 3 in the CLI), like restic.
func TestBackupEmptyStreamWarns(t *testing.T) {
	r, _ := memRepo(t)
	src, err := stdin.New(strings.NewReader(""), stdin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	res, err := backup.Run(context.Background(), r, src, backup.Options{Warn: func(p string, err error) {
		warned = append(warned, p+": "+err.Error())
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Warnings != 1 || len(warned) != 1 || !strings.Contains(warned[0], "no data read") {
		t.Fatalf("warnings %d %q", res.Warnings, warned)
	}
}
