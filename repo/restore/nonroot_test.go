package restore_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/restore"
)

const (
	helperEnv   = "CAIRN_RESTORE_HELPER_REPO"
	helperUID   = 65534 // nobody
	helperGroup = 65534
)

// TestMain lets the test binary act as the unprivileged restore of
// TestRestoreWithoutPrivileges.
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(unprivilegedRestore(dir, os.Getenv("CAIRN_RESTORE_HELPER_TARGET")))
	}
	os.Exit(m.Run())
}

// unprivilegedRestore restores the latest snapshot of the repository in
// dir and prints the failures as JSON.
func unprivilegedRestore(dir, target string) int {
	ctx := context.Background()
	r := openLocal(&exitTB{}, dir)
	sn, _, err := r.FindSnapshot(ctx, "latest", nil)
	if err != nil {
		os.Stderr.WriteString(err.Error())
		return 2
	}
	res, err := restore.Run(ctx, r, sn, "", restore.Options{Target: target, NoLock: true})
	if res == nil {
		os.Stderr.WriteString(err.Error())
		return 2
	}
	var out []string
	for _, f := range res.Failures {
		out = append(out, f.Path+": "+f.Err.Error())
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

// exitTB is the little of testing.TB that openLocal needs, outside a test.
type exitTB struct{ testing.TB }

func (exitTB) Helper() {}

func (exitTB) Fatal(args ...any) {
	b, _ := json.Marshal(args)
	os.Stderr.Write(b)
	os.Exit(2)
}

// Without privileges, a restore keeps going where root could do more:
// ownership stays the restoring user's (no error), device nodes fail (as
// with restic), and everything else — modes with special bits, times,
// xattrs, links, FIFOs — comes back. The restore runs in a child process
// with the nobody user's IDs.
func TestRestoreWithoutPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		testtools.Unavailable(t, "switching to an unprivileged user needs root (the other tests already run unprivileged here)")
	}
	base := t.TempDir()
	testtree.MakeRemovable(t, base)
	src := filepath.Join(base, "src")
	testtree.Build(t, src, testtree.Options{SmallFiles: 20})
	r, repoDir := newRepo(t, true, repo.InitOptions{})
	backupDir(t, r, src)

	// The child must reach the repository (read-only), the binary and a
	// target directory of its own.
	for _, p := range []string{filepath.Dir(base), base, filepath.Dir(repoDir)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chmod", "-R", "a+rX", repoDir).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v %s", err, out)
	}
	bin := filepath.Join(base, "restore.test")
	copyFile(t, os.Args[0], bin, 0o755)
	home := filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, helperUID, helperGroup); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(home, "target")

	cmd := exec.Command(bin)
	cmd.Env = []string{helperEnv + "=" + repoDir, "CAIRN_RESTORE_HELPER_TARGET=" + target, "HOME=" + home}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: helperUID, Gid: helperGroup, Groups: []uint32{}}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unprivileged restore: %v\n%s", err, stderr.String())
	}
	var failures []string
	if err := json.Unmarshal(out, &failures); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	devices := []string{"/special/blockdev", "/special/blockdev-big", "/special/chardev", "/special/chardev-big"}
	var failed []string
	for _, f := range failures {
		p, _, _ := strings.Cut(f, ": ")
		failed = append(failed, p)
		if !strings.Contains(f, "operation not permitted") {
			t.Errorf("failure %s: want a permission error", f)
		}
	}
	slices.Sort(failed)
	if !slices.Equal(failed, devices) {
		t.Errorf("failures %q, want the device nodes %q", failures, devices)
	}
	opts := compareOpts()
	opts.IgnoreOwnership = true
	opts.Ignore = func(p string) bool { return slices.Contains(devices, "/"+p) }
	testtree.Compare(t, src, target, opts)
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(target, "owners/daemon"), &st); err != nil || st.Uid != helperUID {
		t.Errorf("owners/daemon owned by %d (%v), want the restoring user", st.Uid, err)
	}
}

func copyFile(t *testing.T, from, to string, perm os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
