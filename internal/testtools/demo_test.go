package testtools_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/internal/testtree"
)

// TestDemoScript runs README's first command, scripts/demo, on the awkward
// fixture tree: it must exit 0 having diffed the restore itself, the restore
// must match the tree in full (modes, times, owners, links, xattrs), the
// password must never reach a command line, and the real restic must find
// the repository clean.
func TestDemoScript(t *testing.T) {
	root, err := testtools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	work := filepath.Join(tmp, "work")
	testtree.Build(t, src, testtree.Options{SmallFiles: 200})

	cmd := exec.Command(filepath.Join(root, "scripts", "demo"), src)
	cmd.Env = append(os.Environ(), "CAIRN_DEMO_DIR="+work)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/demo %s: %v\n%s", src, err, out.String())
	}
	if !strings.Contains(out.String(), "backed up and restored identically") {
		t.Errorf("scripts/demo did not report success:\n%s", out.String())
	}

	password, err := os.ReadFile(filepath.Join(work, "password"))
	if err != nil {
		t.Fatal(err)
	}
	if len(password) < 32 {
		t.Errorf("generated password is %d bytes, want at least 32", len(password))
	}
	if strings.Contains(out.String(), string(password)) {
		t.Error("the demo printed the repository password")
	}
	if fi, err := os.Stat(filepath.Join(work, "password")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	// The demo's own diff covers content and names; this covers metadata.
	testtree.Compare(t, src, filepath.Join(work, "restore", src), testtree.CompareOptions{})

	restic := oracle.New(t).WithPassword(string(password))
	restic.MustCheck(filepath.Join(work, "repo"), true)
	if snaps := restic.Snapshots(filepath.Join(work, "repo")); len(snaps) != 1 || snaps[0].Hostname != "cairn-demo" {
		t.Errorf("restic sees snapshots %+v, want one from host cairn-demo", snaps)
	}
}

// TestDemoScriptRejectsBadArguments: a directory that does not exist and a
// work directory that is not empty fail with a clear message, before any
// build.
func TestDemoScriptRejectsBadArguments(t *testing.T) {
	root, err := testtools.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{filepath.Join(busy, "missing")}, "", "is not a directory"},
		{[]string{"a", "b"}, "", "usage"},
		{[]string{t.TempDir()}, "CAIRN_DEMO_DIR=" + busy, "is not empty"},
	} {
		cmd := exec.Command(filepath.Join(root, "scripts", "demo"), tc.args...)
		cmd.Env = append(os.Environ(), tc.env)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "building") {
			t.Errorf("demo %v (%s): err=%v\n%s\nwant a failure saying %q before building", tc.args, tc.env, err, out, tc.want)
		}
	}
}
