package testtools

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeExample keeps README.md's library example honest: the first Go
// code block is compiled and run as a program of this module (through
// go's -overlay, so nothing is written into the checkout), with its example
// paths pointed at temporary directories. It must back up and restore.
func TestReadmeExample(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(readme, []byte("\n```go\n"))
	code, _, ok2 := bytes.Cut(rest, []byte("\n```\n"))
	if !ok || !ok2 {
		t.Fatal("README.md has no ```go code block")
	}

	tmp := t.TempDir()
	src := filepath.Join(tmp, "documents")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"note.txt": "hello\n", "sub/more.txt": strings.Repeat("more ", 1000)}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	program := string(code)
	for from, to := range map[string]string{
		`"/srv/backup/repo"`:   `"` + filepath.Join(tmp, "repo") + `"`,
		`"/home/me/documents"`: `"` + src + `"`,
		`"/tmp/restored"`:      `"` + filepath.Join(tmp, "restored") + `"`,
	} {
		if strings.Count(program, from) == 0 {
			t.Fatalf("the README example no longer uses the path %s this test replaces", from)
		}
		program = strings.ReplaceAll(program, from, to)
	}
	mainFile := filepath.Join(tmp, "main.go")
	if err := os.WriteFile(mainFile, []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	// A package directory that exists only in the overlay.
	pkgDir := filepath.Join(root, "internal", "testtools", "readme-example-overlay")
	overlay, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(pkgDir, "main.go"): mainFile}})
	overlayFile := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "go", "run", "-overlay", overlayFile, "./internal/testtools/readme-example-overlay")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README example: %v\n%s\n--- program ---\n%s", err, out, program)
	}
	if !strings.Contains(string(out), "2 new files") {
		t.Errorf("README example printed %q, want it to report 2 new files", out)
	}
	for name, content := range files {
		got, err := os.ReadFile(filepath.Join(tmp, "restored", name))
		if err != nil || string(got) != content {
			t.Errorf("restored %s: %q, %v", name, got, err)
		}
	}
	if _, err := os.Stat(pkgDir); !os.IsNotExist(err) {
		t.Errorf("the overlay package directory exists in the checkout (%v)", err)
	}
}
