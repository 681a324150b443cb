//go:build linux

package sftp_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/testtools"
)

// diskFullEnv marks the child process that runs the disk-full test in a
// mount namespace of its own, where a 1 MiB tmpfs is the full disk. The
// child starts sshd itself, so the server writes into that tmpfs.
const diskFullEnv = "CAIRN_SFTP_DISKFULL_DIR"

func TestDiskFull(t *testing.T) {
	if dir := os.Getenv(diskFullEnv); dir != "" {
		diskFullChild(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestDiskFull$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		testtools.Unavailable(t, "cannot create a mount namespace here: %v", err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDiskFull") {
		t.Fatalf("child process failed: %v\n%s", err, out)
	}
	t.Logf("child process:\n%s", out)
}

func diskFullChild(t *testing.T, dir string) {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	isolate(t)
	s := sshtest.Start(t)
	repo := filepath.Join(dir, "repo")
	be := create(t, config(t, s, repo))

	data := backendtest.Random(7, 2<<20)
	h := backendtest.HandleFor(backend.PackFile, data)
	err := be.Save(t.Context(), h, backend.NewByteReader(data, false))
	if err == nil {
		t.Fatal("Save of 2 MiB onto a 1 MiB disk succeeded")
	}
	t.Logf("Save on a full disk: %v", err)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error does not wrap ENOSPC: %v", err)
	}
	for _, want := range []string{"no space left", backend.Path(repo, h), "sftp: save"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
	if _, err := be.Stat(t.Context(), h); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after the failed Save: %v, want not found", err)
	}
	entries, err := os.ReadDir(filepath.Dir(backend.Path(repo, h)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind after the failed Save: %s", e.Name())
	}
	// A small file still fits: the backend is not broken by the failure.
	save(t, be, backend.KeyFile, []byte("small"))
}
