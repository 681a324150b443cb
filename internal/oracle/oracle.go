package oracle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/testtools"
)

// ToolName is the directory under tools/ that pins the restic version used as
// the oracle.
const ToolName = "restic"

// DefaultPassword is the repository password a new Restic uses; it matches
// the golden and fixture repositories under testdata/.
const DefaultPassword = "test"

// Exit codes of restic 0.19.1 (cmd/restic/main.go), which cairn mirrors.
const (
	ExitOK            = 0   // success
	ExitFatal         = 1   // any fatal error not listed below
	ExitIncomplete    = 3   // backup: some source data could not be read
	ExitNoRepository  = 10  // the repository does not exist
	ExitLocked        = 11  // the repository is locked
	ExitWrongPassword = 12  // no key opens with the password
	ExitInterrupted   = 130 // interrupted by a signal
)

// DefaultTimeout bounds a single restic command, so a hanging server or a
// forgotten lock fails the test instead of stalling the whole run.
const DefaultTimeout = 10 * time.Minute

// Restic runs the pinned restic binary on behalf of one test. The zero value
// is not usable; create one with New. The With* methods return modified
// copies, so a test can hold several views (other password, other host) of
// the same oracle.
type Restic struct {
	t        testing.TB
	bin      string
	password string
	noPass   bool
	cacheDir string
	dir      string
	env      []string
	timeout  time.Duration
}

// New returns an oracle for t: the restic binary from testtools.Binary (which
// fails the test in CI and skips it elsewhere when restic cannot be built),
// password DefaultPassword, TZ=UTC, and a cache directory inside t.TempDir().
func New(t testing.TB) *Restic {
	t.Helper()
	bin := testtools.Binary(t, ToolName)
	return &Restic{
		t:        t,
		bin:      bin,
		password: DefaultPassword,
		cacheDir: t.TempDir(),
		env:      []string{"TZ=UTC"},
		timeout:  DefaultTimeout,
	}
}

// Bin returns the path of the restic executable.
func (r *Restic) Bin() string { return r.bin }

// CacheDir returns the cache directory the commands use (RESTIC_CACHE_DIR).
func (r *Restic) CacheDir() string { return r.cacheDir }

// Password returns the repository password the commands use.
func (r *Restic) Password() string { return r.password }

func (r *Restic) clone() *Restic {
	c := *r
	c.env = slices.Clone(r.env)
	return &c
}

// WithPassword returns a copy that opens repositories with password. An
// empty password selects restic's --insecure-no-password.
func (r *Restic) WithPassword(password string) *Restic {
	c := r.clone()
	c.password = password
	c.noPass = password == ""
	return c
}

// WithEnv returns a copy that adds the KEY=VALUE pairs to the environment of
// every command, replacing earlier values of the same keys (TZ, RESTIC_HOST,
// AWS_ACCESS_KEY_ID, …). Secrets belong here, never in arguments.
func (r *Restic) WithEnv(kv ...string) *Restic {
	c := r.clone()
	for _, e := range kv {
		key, _, ok := strings.Cut(e, "=")
		if !ok {
			r.t.Fatalf("oracle: WithEnv(%q): want KEY=VALUE", key)
		}
		c.env = slices.DeleteFunc(c.env, func(old string) bool { return strings.HasPrefix(old, key+"=") })
		c.env = append(c.env, e)
	}
	return c
}

// InDir returns a copy that runs commands in dir, for relative backup paths.
func (r *Restic) InDir(dir string) *Restic {
	c := r.clone()
	c.dir = dir
	return c
}

// WithCacheDir returns a copy that uses dir as restic's cache, e.g. to share
// a warm cache between two oracles or to inspect what restic cached.
func (r *Restic) WithCacheDir(dir string) *Restic {
	c := r.clone()
	c.cacheDir = dir
	return c
}

// WithTimeout returns a copy whose commands are killed after d.
func (r *Restic) WithTimeout(d time.Duration) *Restic {
	c := r.clone()
	c.timeout = d
	return c
}

// Cmd describes one restic invocation for RunWith.
type Cmd struct {
	Repo  string    // passed as --repo unless empty
	Args  []string  // the command and its arguments, e.g. {"snapshots", "--json"}
	Stdin io.Reader // standard input, e.g. for backup --stdin; nil means none
	Dir   string    // working directory; empty means the oracle's (see InDir)
	Env   []string  // KEY=VALUE pairs added for this command only
}

// Result is what one restic invocation printed and how it exited.
type Result struct {
	Args     []string // arguments after the binary, for messages
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	Duration time.Duration
}

// OK reports whether restic exited with status 0.
func (res *Result) OK() bool { return res.ExitCode == ExitOK }

// Err returns nil when restic exited with status 0 and otherwise an error
// naming the command, the exit code and the end of its stderr.
func (res *Result) Err() error {
	if res.OK() {
		return nil
	}
	return fmt.Errorf("restic %s: exit code %d: %s", strings.Join(res.Args, " "), res.ExitCode, tail(res.Stderr, 2000))
}

// Output returns stdout followed by stderr, for assertions on messages.
func (res *Result) Output() string { return string(res.Stdout) + string(res.Stderr) }

// Run runs restic with args against repo (no --repo when repo is empty) and
// returns its result whatever the exit code. It fails the test only when
// restic cannot be started or times out.
func (r *Restic) Run(repo string, args ...string) *Result {
	r.t.Helper()
	return r.RunWith(Cmd{Repo: repo, Args: args})
}

// RunWith runs the invocation c; see Run.
func (r *Restic) RunWith(c Cmd) *Result {
	r.t.Helper()
	var argv []string
	if c.Repo != "" {
		argv = append(argv, "--repo", c.Repo)
	}
	if r.noPass {
		argv = append(argv, "--insecure-no-password")
	}
	argv = append(argv, c.Args...)

	ctx, cancel := context.WithTimeout(r.t.Context(), r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, argv...)
	cmd.Dir = r.dir
	if c.Dir != "" {
		cmd.Dir = c.Dir
	}
	cmd.Env = r.environ(c.Env)
	cmd.Stdin = c.Stdin
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr

	start := time.Now()
	err := cmd.Run()
	res := &Result{Args: argv, Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.t.Fatalf("oracle: restic %s: %v after %v\nstderr: %s", strings.Join(argv, " "), ctx.Err(), res.Duration, tail(res.Stderr, 2000))
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	case err != nil:
		r.t.Fatalf("oracle: start restic %s: %v", strings.Join(argv, " "), err)
	}
	return res
}

// MustRun is Run that fails the test unless restic exits with status 0.
func (r *Restic) MustRun(repo string, args ...string) *Result {
	r.t.Helper()
	res := r.Run(repo, args...)
	if err := res.Err(); err != nil {
		r.t.Fatalf("oracle: %v", err)
	}
	return res
}

// environ builds the child environment: the parent's minus every RESTIC_*
// variable (a developer's RESTIC_REPOSITORY or RESTIC_PASSWORD_COMMAND must
// never reach a test), then the cache, the password, the oracle's and the
// command's own variables.
func (r *Restic) environ(extra []string) []string {
	env := slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "RESTIC_") })
	env = append(env, "RESTIC_CACHE_DIR="+r.cacheDir)
	if !r.noPass {
		env = append(env, "RESTIC_PASSWORD="+r.password)
	}
	env = append(env, r.env...)
	return append(env, extra...)
}

// RunJSON runs restic with --json and the args against repo, fails the test
// unless it exits with status 0, and decodes its stdout (one JSON document,
// such as the output of snapshots or key list) into v.
func (r *Restic) RunJSON(repo string, v any, args ...string) {
	r.t.Helper()
	res := r.MustRun(repo, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal(res.Stdout, v); err != nil {
		r.t.Fatalf("oracle: decode JSON of restic %s: %v\nstdout: %s", strings.Join(res.Args, " "), err, tail(res.Stdout, 2000))
	}
}

// RunJSONLines runs restic with --json and the args against repo, fails the
// test unless it exits with status 0, and returns each JSON value restic
// printed on stdout (backup, restore and ls print one message per line).
func (r *Restic) RunJSONLines(repo string, args ...string) []json.RawMessage {
	r.t.Helper()
	res := r.MustRun(repo, append([]string{"--json"}, args...)...)
	msgs, err := SplitJSONLines(res.Stdout)
	if err != nil {
		r.t.Fatalf("oracle: restic %s: %v", strings.Join(res.Args, " "), err)
	}
	return msgs
}

// SplitJSONLines splits restic's line-delimited JSON output into its values.
// Lines that are not JSON (restic prints a few plain messages even with
// --json) are an error, so a changed output format is noticed.
func SplitJSONLines(out []byte) ([]json.RawMessage, error) {
	var msgs []json.RawMessage
	for i, line := range bytes.Split(out, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if !json.Valid(line) {
			return nil, fmt.Errorf("output line %d is not JSON: %q", i+1, tail(line, 300))
		}
		msgs = append(msgs, json.RawMessage(bytes.Clone(line)))
	}
	return msgs, nil
}

// Version returns restic's version line, e.g. "restic 0.19.1 compiled with …".
func (r *Restic) Version() string {
	r.t.Helper()
	return strings.TrimSpace(string(r.MustRun("", "version").Stdout))
}

func tail(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return "…" + string(b[len(b)-n:])
}
