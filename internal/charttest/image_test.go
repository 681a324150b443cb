package charttest

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestImageRecipe runs the Dockerfile's own go build line (no Docker engine
// is needed) and checks what the image relies on: a static binary, without
// an ELF interpreter or dynamic section, that reports the version the build
// argument gave it.
func TestImageRecipe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cairn")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 .*go build .*) -o /out/cairn (\./cmd/cairn)$`).FindSubmatch(dockerfile)
	if m == nil {
		t.Fatal("the Dockerfile has no `RUN CGO_ENABLED=0 … go build … -o /out/cairn ./cmd/cairn` line")
	}
	const version = "9.8.7-test"
	line := strings.NewReplacer("${VERSION}", version, "${TARGETOS}", runtime.GOOS, "${TARGETARCH}", runtime.GOARCH).Replace(string(m[1]))
	out := filepath.Join(t.TempDir(), "cairn")
	// The line's environment assignments and flags, as the RUN shell would
	// split them (the ldflags value is quoted).
	var env, args []string
	for _, f := range regexp.MustCompile(`[^\s"]+(?:"[^"]*")?`).FindAllString(line, -1) {
		f = strings.ReplaceAll(f, `"`, "")
		if len(args) == 0 && strings.Contains(f, "=") && !strings.HasPrefix(f, "-") {
			env = append(env, f)
			continue
		}
		args = append(args, f)
	}
	if len(args) < 2 || args[0] != "go" || args[1] != "build" {
		t.Fatalf("cannot read the build command from %q", line)
	}
	cmd := exec.Command("go", append(args[1:], "-o", out, string(m[2]))...)
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "GOWORK=off"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is not static: it has a %v program header", p.Type)
		}
	}
	b, err := exec.Command(out, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(b), version) {
		t.Errorf("cairn version = %q, %v; want it to name %s", b, err, version)
	}
}
