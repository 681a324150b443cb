//go:build linux

package local

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/internal/testtools"
)

// The disk-full tests run their checks in a child process (this test binary
// again), because the limits they set would break the rest of the run:
// RLIMIT_FSIZE applies to the whole process, and the tmpfs lives in a mount
// namespace of its own that disappears with the child.
const (
	childModeEnv = "CAIRN_LOCAL_DISKFULL_MODE"
	childDirEnv  = "CAIRN_LOCAL_DISKFULL_DIR"
	fsizeLimit   = 1 << 20
)

// runChild reruns test in a child with the given mode and directory and
// fails unless the child's test passed.
func runChild(t *testing.T, test, mode, dir string, attr *syscall.SysProcAttr) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childModeEnv+"="+mode, childDirEnv+"="+dir)
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if attr != nil && errors.Is(err, syscall.EPERM) {
		testtools.Unavailable(t, "cannot create a mount namespace here: %v", err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("child process (%s) failed: %v\n%s", mode, err, out)
	}
	t.Logf("child process:\n%s", out)
}

// saveCase is one way of writing a file that cannot fit.
type saveCase struct {
	name          string
	noPreallocate bool
	fromFile      bool
	h             backend.Handle
}

// checkNoSpaceSave runs one saveCase and checks that it failed with want,
// names the file, and left neither the file nor a temporary behind.
func checkNoSpaceSave(t *testing.T, be *Backend, c saveCase, data []byte, src *os.File, want error) {
	t.Helper()
	b := *be
	b.noPreallocate = c.noPreallocate
	var rd backend.RewindReader = backend.NewByteReader(data, false)
	if c.fromFile {
		rd = backend.NewFileReader(src, int64(len(data)), nil)
	}
	err := b.Save(t.Context(), c.h, rd)
	if !errors.Is(err, want) {
		t.Fatalf("%s: Save of %d bytes = %v, want an error wrapping %v", c.name, len(data), err, want)
	}
	final, _ := b.filename(c.h)
	if !strings.Contains(err.Error(), final) {
		t.Errorf("%s: error %q does not name %s", c.name, err, final)
	}
	t.Logf("%s: %v", c.name, err)
	entries, err := os.ReadDir(filepath.Dir(final))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), "-tmp-") {
			t.Errorf("%s: temporary file %s left behind", c.name, e.Name())
		}
		if c.h.Type != backend.ConfigFile && e.Name() == c.h.Name {
			t.Errorf("%s: %s is visible after the failed Save", c.name, c.h.Name)
		}
	}
}

// noSpaceCases covers preallocation, plain writes, the copy_file_range path
// and the replacement of an existing config.
func noSpaceCases(data []byte) []saveCase {
	pack := backendtest.HandleFor(backend.PackFile, data)
	return []saveCase{
		{name: "preallocated", h: pack},
		{name: "write", noPreallocate: true, h: pack},
		{name: "copy from file", noPreallocate: true, fromFile: true, h: pack},
		{name: "replace config", noPreallocate: true, h: backend.Handle{Type: backend.ConfigFile}},
	}
}

// writeSource writes data to a file in dir for the FileReader cases.
func writeSource(t *testing.T, dir string, data []byte) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "source"), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.Create(filepath.Join(dir, "source"))
		if err == nil {
			_, err = f.Write(data)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestDiskFullFileSizeLimit makes writes fail with EFBIG through
// RLIMIT_FSIZE, which needs no privileges.
func TestDiskFullFileSizeLimit(t *testing.T) {
	big := backendtest.Random(2, 4*fsizeLimit)
	oldConfig := []byte("old config")
	small := backendtest.Random(1, fsizeLimit/4)
	if os.Getenv(childModeEnv) == "fsize" {
		dir := os.Getenv(childDirEnv)
		src := writeSource(t, dir, big) // opened before the limit applies
		signal.Ignore(syscall.SIGXFSZ)
		lim := syscall.Rlimit{Cur: fsizeLimit, Max: fsizeLimit}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatalf("setrlimit: %v", err)
		}
		be, err := Open(t.Context(), filepath.Join(dir, "repo"))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range noSpaceCases(big) {
			checkNoSpaceSave(t, be, c, big, src, syscall.EFBIG)
		}
		h := backendtest.HandleFor(backend.PackFile, small)
		if err := be.Save(t.Context(), h, backend.NewByteReader(small, false)); err != nil {
			t.Fatalf("Save of a file below the limit: %v", err)
		}
		return
	}

	dir := t.TempDir()
	writeSource(t, dir, big)
	be, err := Create(t.Context(), filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Save(t.Context(), backend.Handle{Type: backend.ConfigFile}, backend.NewByteReader(oldConfig, false)); err != nil {
		t.Fatal(err)
	}
	runChild(t, "TestDiskFullFileSizeLimit", "fsize", dir, nil)

	// Check the result from outside as well: exactly the old config and the
	// small pack, nothing half-written.
	var found []string
	err = filepath.WalkDir(be.path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found = append(found, d.Name())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 {
		t.Fatalf("repository holds %v after the failed saves, want the config and one small pack", found)
	}
	got, err := backend.LoadAll(t.Context(), be, backend.Handle{Type: backend.ConfigFile})
	if err != nil || !bytes.Equal(got, oldConfig) {
		t.Fatalf("config after a failed replace: %q, %v", got, err)
	}
	if got, err := backend.LoadAll(t.Context(), be, backendtest.HandleFor(backend.PackFile, small)); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("small pack saved under the limit: %v", err)
	}
}

// TestDiskFullTmpfs fills a real 4 MiB tmpfs, mounted in a private mount
// namespace, so writes fail with ENOSPC. It also proves that a failed Save
// gives its space back. It needs CAP_SYS_ADMIN and is skipped without it;
// TestDiskFullFileSizeLimit covers the same paths unprivileged.
func TestDiskFullTmpfs(t *testing.T) {
	if os.Getenv(childModeEnv) == "tmpfs" {
		tmpfsChild(t, os.Getenv(childDirEnv))
		return
	}
	runChild(t, "TestDiskFullTmpfs", "tmpfs", t.TempDir(), &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS})
}

func tmpfsChild(t *testing.T, dir string) {
	big := backendtest.Random(3, 3<<20)
	src := writeSource(t, dir, big) // outside the tmpfs
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	be, err := Create(t.Context(), filepath.Join(mnt, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	first := backendtest.Random(4, 2<<20)
	for h, data := range map[backend.Handle][]byte{
		{Type: backend.ConfigFile}:                     []byte("cfg"),
		backendtest.HandleFor(backend.PackFile, first): first,
	} {
		if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
			t.Fatalf("Save(%v) before the disk is full: %v", h, err)
		}
	}
	free := func() uint64 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		return st.Bfree * uint64(st.Bsize)
	}
	before := free()
	for _, c := range noSpaceCases(big) {
		checkNoSpaceSave(t, be, c, big, src, syscall.ENOSPC)
		if after := free(); after != before {
			t.Errorf("%s: %d bytes free after the failed Save, %d before: space not released", c.name, after, before)
		}
	}
	got, err := backend.LoadAll(t.Context(), be, backend.Handle{Type: backend.ConfigFile})
	if err != nil || string(got) != "cfg" {
		t.Fatalf("config after a failed replace on a full disk: %q, %v", got, err)
	}
	// The space freed by the failed saves is usable again.
	rest := backendtest.Random(5, 1<<20)
	if err := be.Save(t.Context(), backendtest.HandleFor(backend.IndexFile, rest), backend.NewByteReader(rest, false)); err != nil {
		t.Fatalf("Save of 1 MiB after the failures: %v", err)
	}
}
