package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/repo"
)

// cairnBin is the binary under test, built once by TestMain.
var cairnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cairn-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Other users run it too (the unreadable-file test runs as nobody).
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cairnBin = filepath.Join(dir, "cairn")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", cairnBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build cairn: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testPassword is the password of the repositories the tests create.
const testPassword = "correct horse battery staple"

// result is what one cairn run printed and how it exited.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("cairn %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runner runs the cairn binary with a controlled environment: none of the
// developer's RESTIC_* variables, TZ=UTC, a private cache and home.
type runner struct {
	t     *testing.T
	env   []string
	stdin io.Reader
	dir   string
	cred  *syscall.Credential
}

func newRunner(t *testing.T) *runner {
	t.Helper()
	home := t.TempDir()
	env := slices.DeleteFunc(os.Environ(), func(e string) bool {
		return strings.HasPrefix(e, "RESTIC_") || strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "HOME=") ||
			strings.HasPrefix(e, "XDG_CACHE_HOME=") || strings.HasPrefix(e, "AWS_")
	})
	env = append(env, "TZ=UTC", "HOME="+home, "RESTIC_CACHE_DIR="+filepath.Join(home, "cache"))
	return &runner{t: t, env: env}
}

// with returns a copy with more KEY=VALUE pairs (later ones win).
func (r *runner) with(kv ...string) *runner {
	c := *r
	c.env = slices.Clone(r.env)
	for _, e := range kv {
		key, _, _ := strings.Cut(e, "=")
		c.env = slices.DeleteFunc(c.env, func(old string) bool { return strings.HasPrefix(old, key+"=") })
		c.env = append(c.env, e)
	}
	return &c
}

func (r *runner) withStdin(in io.Reader) *runner {
	c := *r
	c.stdin = in
	return &c
}

func (r *runner) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, cairnBin, args...)
	cmd.Env = r.env
	cmd.Dir = r.dir
	cmd.Stdin = r.stdin
	// Pdeathsig: a test binary killed by its -timeout takes its cairn
	// children with it instead of leaving them running on the machine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred, Pdeathsig: syscall.SIGKILL}
	// A run that outlives its context is hung: SIGQUIT makes the Go
	// runtime print every goroutine's stack to stderr, which the failing
	// test shows; WaitDelay kills it if even that does not end it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// run runs cairn and returns its result whatever the exit code.
func (r *runner) run(args ...string) result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 5*time.Minute)
	defer cancel()
	cmd := r.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("run cairn %v: %v", args, err)
	}
	if ctx.Err() != nil {
		r.t.Fatalf("cairn %v timed out\n%s", args, res)
	}
	return res
}

// ok runs cairn and fails the test unless it exits with status 0.
func (r *runner) ok(args ...string) result {
	r.t.Helper()
	res := r.run(args...)
	if res.code != 0 {
		r.t.Fatalf("%s", res)
	}
	return res
}

// expect runs cairn and fails the test unless it exits with code.
func (r *runner) expect(code int, args ...string) result {
	r.t.Helper()
	res := r.run(args...)
	if res.code != code {
		r.t.Fatalf("want exit %d, got %s", code, res)
	}
	return res
}

// newRepo creates a version 2 repository with cheap key derivation (so
// that every command opening it is fast) and returns its directory.
func newRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	ctx := context.Background()
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, testPassword, repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	return dir
}

// openRepo opens a repository directory with the library.
func openRepo(t *testing.T, dir string) *repo.Repository {
	t.Helper()
	be, err := local.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), be, testPassword, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// oracleFor returns the restic oracle with the tests' password and zone.
func oracleFor(t *testing.T) *oracle.Restic {
	t.Helper()
	return oracle.New(t).WithPassword(testPassword).WithEnv("TZ=UTC")
}

// jsonLines splits NDJSON output and fails the test on a line that is not
// JSON.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var msgs []map[string]any
	for i, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("output line %d is not a JSON object: %q (%v)", i+1, line, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// keysOf returns the sorted keys of a JSON object, and of nested objects
// as "outer.inner".
func keysOf(m map[string]any) []string {
	var keys []string
	for k, v := range m {
		keys = append(keys, k)
		if sub, ok := v.(map[string]any); ok {
			for _, sk := range keysOf(sub) {
				keys = append(keys, k+"."+sk)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// lockFiles returns the names in the repository's locks directory.
func lockFiles(t *testing.T, repoDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repoDir, "locks"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// lockIDs is lockFiles without the local backend's temporary files
// (<id>-tmp-<random>, a lock being written), which restic and cairn ignore.
func lockIDs(t *testing.T, repoDir string) []string {
	t.Helper()
	return slices.DeleteFunc(lockFiles(t, repoDir), func(name string) bool { return !fileID.MatchString(name) })
}

// oracleCmd is a restic invocation with standard input.
func oracleCmd(repoDir string, stdin io.Reader, args ...string) oracle.Cmd {
	return oracle.Cmd{Repo: repoDir, Args: args, Stdin: stdin}
}
