package testtools

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCheckout copies scripts/build-tool into a temporary checkout with one
// tool module, tools/hello, whose tool comes from a local module (through a
// replace directive), so the script is exercised without the network.
func fakeCheckout(t *testing.T) (root string) {
	t.Helper()
	realRoot, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(realRoot, "scripts", "build-tool"))
	if err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	files := map[string]string{
		"scripts/build-tool": string(script),
		"tools/hello/go.mod": `module example.com/tools/hello

go 1.26

tool example.com/hello/cmd/hello

require example.com/hello v1.2.3

replace example.com/hello v1.2.3 => ../../hellosrc
`,
		"hellosrc/go.mod":            "module example.com/hello\n\ngo 1.26\n",
		"hellosrc/cmd/hello/main.go": "package main\n\nfunc main() { println(\"hello from the tool\") }\n",
	}
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func runBuildTool(t *testing.T, root, cache, name string) (path, stderr string, err error) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "build-tool"), name)
	cmd.Env = append(os.Environ(), "CAIRN_TOOLS_CACHE="+cache)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return strings.TrimSpace(out.String()), errb.String(), err
}

func TestBuildToolScript(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		Unavailable(t, "flock: %v", err)
	}
	root := fakeCheckout(t)
	cache := t.TempDir()
	want := filepath.Join(cache, "hello-v1.2.3", "hello")

	// Parallel callers: one build, everyone gets the same path.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var builds int
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path, stderr, err := runBuildTool(t, root, cache, "hello")
			mu.Lock()
			defer mu.Unlock()
			if err != nil || path != want {
				t.Errorf("build-tool hello = %q, %v; want %q\n%s", path, err, want, stderr)
			}
			builds += strings.Count(stderr, "building ")
		}()
	}
	wg.Wait()
	if builds != 1 {
		t.Errorf("%d builds for 3 parallel callers, want 1", builds)
	}
	out, err := exec.Command(want).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hello from the tool") {
		t.Fatalf("built tool: %q, %v", out, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(want))
	if len(entries) != 1 {
		t.Errorf("cache dir holds %d entries, want only the binary (no temp files)", len(entries))
	}

	// Idempotent and fast: the binary is not rebuilt.
	before, _ := os.Stat(want)
	start := time.Now()
	path, stderr, err := runBuildTool(t, root, cache, "hello")
	if err != nil || path != want || stderr != "" {
		t.Fatalf("second build-tool = %q, %v, stderr %q", path, err, stderr)
	}
	if after, _ := os.Stat(want); !after.ModTime().Equal(before.ModTime()) {
		t.Error("second build-tool rebuilt the binary")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second build-tool took %v, want a fast exit", d)
	}

	// Errors are clear and exit non-zero.
	for name, wantMsg := range map[string]string{
		"missing": "no tool module",
		"../x":    "invalid tool name",
	} {
		_, stderr, err := runBuildTool(t, root, cache, name)
		if err == nil || !strings.Contains(stderr, wantMsg) {
			t.Errorf("build-tool %q: err=%v stderr=%q, want failure mentioning %q", name, err, stderr, wantMsg)
		}
	}
	two := filepath.Join(root, "tools", "two", "go.mod")
	if err := os.MkdirAll(filepath.Dir(two), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(two, []byte("module example.com/two\n\ngo 1.26\n\ntool (\n\ta.example/x\n\tb.example/y\n)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := runBuildTool(t, root, cache, "two"); err == nil || !strings.Contains(stderr, "exactly one tool") {
		t.Errorf("build-tool with two tools: err=%v stderr=%q", err, stderr)
	}
}
