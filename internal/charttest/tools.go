package charttest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// inCI reports whether CI=true (or another true value): then a missing tool
// or server fails the test instead of skipping it, as in internal/testtools.
func inCI() bool {
	v, err := strconv.ParseBool(strings.TrimSpace(os.Getenv("CI")))
	return err == nil && v
}

// unavailable fails the test in CI and skips it elsewhere.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("unavailable (CI=true, so this is a failure): %s", msg)
	}
	t.Skipf("unavailable: %s", msg)
}

// repoRoot is the checkout's root: the closest directory above the working
// directory that holds scripts/build-tool and charts/cairn.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if fileExists(filepath.Join(dir, "scripts", "build-tool")) && fileExists(filepath.Join(dir, "charts", "cairn", "Chart.yaml")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find repository root: no scripts/build-tool and charts/cairn above the working directory")
		}
		dir = parent
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

type built struct {
	once sync.Once
	path string
	err  error
}

var tools sync.Map // name -> *built

// tool returns the cached binary of tools/<name>, building it with
// scripts/build-tool once per test process.
func tool(t testing.TB, name string) string {
	t.Helper()
	v, _ := tools.LoadOrStore(name, &built{})
	b := v.(*built)
	b.once.Do(func() { b.path, b.err = buildTool(name) })
	if b.err != nil {
		unavailable(t, "tool %s: %v", name, b.err)
	}
	return b.path
}

func buildTool(name string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "build-tool"), name)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if len(msg) > 4000 {
			msg = "…" + msg[len(msg)-4000:]
		}
		return "", fmt.Errorf("scripts/build-tool %s: %w\n%s", name, err, msg)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	path := lines[len(lines)-1]
	if !filepath.IsAbs(path) || !fileExists(path) {
		return "", fmt.Errorf("scripts/build-tool %s printed %q, want the path of the binary", name, path)
	}
	return path, nil
}
