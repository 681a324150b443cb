package testtools

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// recorder captures how Unavailable ends a test without ending the real one.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.fatal = format }
func (r *recorder) Skipf(format string, a ...any)  { r.skip = format }

func TestInCI(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want bool
	}{
		{"true", true}, {"1", true}, {"TRUE", true}, {"false", false}, {"", false}, {"yes-please", false},
	} {
		t.Setenv("CI", tc.val)
		if got := InCI(); got != tc.want {
			t.Errorf("CI=%q: InCI() = %v, want %v", tc.val, got, tc.want)
		}
	}
}

func TestUnavailableFailsInCIAndSkipsElsewhere(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	Unavailable(r, "no %s", "server")
	if r.fatal == "" || r.skip != "" {
		t.Errorf("CI=true: fatal=%q skip=%q, want a failure", r.fatal, r.skip)
	}

	t.Setenv("CI", "")
	r = &recorder{TB: t}
	Unavailable(r, "no %s", "server")
	if r.skip == "" || r.fatal != "" {
		t.Errorf("CI unset: fatal=%q skip=%q, want a skip", r.fatal, r.skip)
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := modulePathOf(filepath.Join(root, "go.mod"))
	if err != nil || mod != ModulePath {
		t.Fatalf("RepoRoot() = %s whose go.mod declares %q (%v), want %s", root, mod, err, ModulePath)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "build-tool")); err != nil {
		t.Fatalf("repository root %s has no scripts/build-tool: %v", root, err)
	}

	// From inside a tool module (its own go.mod), the main root is still found.
	t.Chdir(filepath.Join(root, "tools", "restic"))
	again, err := RepoRoot()
	if err != nil || again != root {
		t.Fatalf("RepoRoot() from tools/restic = %q, %v; want %q", again, err, root)
	}

	t.Chdir(t.TempDir())
	if got, err := RepoRoot(); err == nil {
		t.Fatalf("RepoRoot() outside the checkout = %q, want an error", got)
	}
}

func TestBuildToolRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "../restic", "a/b", "no-such-tool"} {
		if p, err := BuildTool(name); err == nil {
			t.Errorf("BuildTool(%q) = %q, want an error", name, p)
		}
	}
}

func TestBinaryRestic(t *testing.T) {
	bin := Binary(t, "restic")
	if !filepath.IsAbs(bin) || filepath.Base(bin) != "restic" {
		t.Fatalf("Binary(restic) = %q, want an absolute path ending in /restic", bin)
	}
	if !strings.Contains(filepath.Base(filepath.Dir(bin)), "restic-v0.19.1") {
		t.Errorf("Binary(restic) = %q, want it cached under restic-v0.19.1", bin)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	if !strings.HasPrefix(string(out), "restic 0.19.1 ") {
		t.Fatalf("%s version = %q, want restic 0.19.1", bin, out)
	}
	if again := Binary(t, "restic"); again != bin {
		t.Errorf("second Binary(restic) = %q, want %q", again, bin)
	}
}

// A test that points HOME (or CAIRN_TOOLS_CACHE) elsewhere must keep using
// the cache resolved at start, not rebuild the tools under its temporary HOME.
func TestCacheResolvedOnce(t *testing.T) {
	before, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("CAIRN_TOOLS_CACHE", "")
	if after, err := CacheDir(); err != nil || after != before {
		t.Fatalf("CacheDir() after changing HOME = %q, %v; want %q", after, err, before)
	}
	// buildTool, not BuildTool: the memoised result would prove nothing.
	path, err := buildTool("restic")
	if err != nil {
		Unavailable(t, "tool restic: %v", err)
	}
	if !strings.HasPrefix(path, before+string(filepath.Separator)) {
		t.Errorf("restic built at %q, want it under the start cache %q", path, before)
	}
	if _, err := os.Stat(filepath.Join(home, ".cache")); !os.IsNotExist(err) {
		t.Errorf("the temporary HOME gained a .cache directory (err=%v): the build used the changed HOME", err)
	}
}
