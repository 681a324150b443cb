package testtools

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ModulePath is the import path of the main module; RepoRoot looks for the
// go.mod that declares it.
const ModulePath = "github.com/cairn-backup/cairn"

// InCI reports whether the tests run in continuous integration, i.e. the
// environment variable CI holds a true value ("true", "1", …). In CI a
// missing tool or server is a failure, never a skip.
func InCI() bool {
	v, err := strconv.ParseBool(strings.TrimSpace(os.Getenv("CI")))
	return err == nil && v
}

// Unavailable reports that something a test needs (a tool, a server, a
// kernel feature) is not available: it fails the test when InCI, and skips
// it with the formatted reason otherwise.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("unavailable (CI=true, so this is a failure): %s", msg)
		return // Fatalf ends the goroutine; the return keeps fakes honest
	}
	t.Skipf("unavailable: %s", msg)
}

// RepoRoot returns the root of the cairn checkout: the closest directory at
// or above the working directory whose go.mod declares ModulePath. Tool
// modules under tools/ have their own go.mod and are passed over.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		mod, err := modulePathOf(filepath.Join(dir, "go.mod"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("find repository root: %w", err)
		}
		if mod == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find repository root: no go.mod declaring module %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

// modulePathOf returns the module path declared by the go.mod file at path.
func modulePathOf(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return "", nil
}

// buildResult memoises one tool build per test process, so a package with
// many tests runs the build script once per tool.
type buildResult struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // tool name -> *buildResult

// The checkout root and the tools cache are resolved once, when the test
// binary starts: tests that change HOME (to isolate ssh or restic config) or
// the working directory must still find the tools already built, not start a
// rebuild into a cache under their temporary HOME.
var (
	startRoot, startRootErr   = RepoRoot()
	startCache, startCacheErr = cacheDirFromEnv()
	startHome                 = os.Getenv("HOME")
)

// cacheDirFromEnv is scripts/build-tool's rule for the tools cache:
// $CAIRN_TOOLS_CACHE, or else ~/.cache/cairn-tools.
func cacheDirFromEnv() (string, error) {
	if dir := os.Getenv("CAIRN_TOOLS_CACHE"); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", fmt.Errorf("tools cache CAIRN_TOOLS_CACHE=%q: %w", dir, err)
		}
		return abs, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("tools cache: CAIRN_TOOLS_CACHE is unset and %w", err)
	}
	return filepath.Join(home, ".cache", "cairn-tools"), nil
}

// CacheDir returns the directory the tools are built into, as resolved when
// the test binary started ($CAIRN_TOOLS_CACHE, or else ~/.cache/cairn-tools);
// later changes to HOME or CAIRN_TOOLS_CACHE do not move it.
func CacheDir() (string, error) {
	return startCache, startCacheErr
}

// Binary returns the absolute path of the executable declared by
// tools/<name>/go.mod, building it with scripts/build-tool when it is not in
// the cache yet. If the tool cannot be built the test fails in CI and is
// skipped elsewhere (see Unavailable).
func Binary(t testing.TB, name string) string {
	t.Helper()
	path, err := BuildTool(name)
	if err != nil {
		Unavailable(t, "tool %q: %v", name, err)
	}
	return path
}

// BuildTool is Binary for code without a testing.TB (fixture generators,
// TestMain): it returns the cached executable of tools/<name>, building it
// when needed, or an error saying why it could not.
func BuildTool(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", fmt.Errorf("invalid tool name %q", name)
	}
	v, _ := builds.LoadOrStore(name, &buildResult{})
	r := v.(*buildResult)
	r.once.Do(func() { r.path, r.err = buildTool(name) })
	return r.path, r.err
}

func buildTool(name string) (string, error) {
	root, err := startRoot, startRootErr
	if err != nil {
		return "", err
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "tools", name, "go.mod")); err != nil {
		return "", fmt.Errorf("no tool module tools/%s: %w", name, err)
	}
	script := filepath.Join(root, "scripts", "build-tool")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script, name)
	cmd.Dir = root
	// The cache is passed explicitly so the script does not derive it again
	// from a HOME a test may have changed.
	// HOME goes back to its first value too, so a build started under a
	// test's HOME uses the machine's Go module and build caches.
	cmd.Env = append(os.Environ(), "CAIRN_TOOLS_CACHE="+cache)
	if startHome != "" {
		cmd.Env = append(cmd.Env, "HOME="+startHome)
	}
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/build-tool %s: %w\n%s", name, err, tail(stderr.String(), 4000))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	path := strings.TrimSpace(lines[len(lines)-1])
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("scripts/build-tool %s printed %q, want an absolute path", name, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("scripts/build-tool %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("scripts/build-tool %s: %s is not an executable file", name, path)
	}
	return path, nil
}

// tail keeps the last n bytes of s, where a build error usually is.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
