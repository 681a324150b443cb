package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/repo"
)

// unlock removes stale locks only; --remove-all removes every lock.
func TestUnlock(t *testing.T) {
	dir := newRepo(t)
	lk := openRepo(t, dir)
	ctx := context.Background()

	// The live lock comes first: taking a lock removes stale ones.
	_, live, err := lk.Lock(ctx, false, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Unlock()
	// A lock from this host whose process is gone is stale.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	stale, _ := json.Marshal(repo.Lock{Time: time.Now(), Hostname: host, Username: "ghost", PID: dead.Process.Pid})
	if _, err := lk.SaveUnpacked(ctx, backend.LockFile, stale); err != nil {
		t.Fatal(err)
	}

	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	res := r.ok("unlock")
	if !strings.Contains(res.stdout, "successfully removed 1 locks") {
		t.Errorf("%s", res)
	}
	holder := live.Lock()
	if locks := lockFiles(t, dir); len(locks) != 1 || locks[0] != holder.ID().String() {
		t.Fatalf("after unlock: %v", locks)
	}
	res = r.ok("unlock", "--remove-all")
	if !strings.Contains(res.stdout, "successfully removed 1 locks") || len(lockFiles(t, dir)) != 0 {
		t.Errorf("--remove-all: %s, left %v", res, lockFiles(t, dir))
	}
	if res := r.ok("unlock"); res.stdout != "" {
		t.Errorf("nothing to unlock printed %q", res.stdout)
	}
}

func TestSnapshotsSelection(t *testing.T) {
	dir := newRepo(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"f": "x"})
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	a := backupJSON(t, r, "--host", "a", src)["snapshot_id"].(string)
	b := backupJSON(t, r, "--host", "b", src)["snapshot_id"].(string)
	o := oracleFor(t)
	for _, args := range [][]string{
		{"snapshots", "--json", a[:6]},
		{"snapshots", "--json", a, b, a},
		{"snapshots", "--json", "latest"},
		{"snapshots", "--json", "--host", "a", "latest"},
		{"snapshots", "--json", "--host", "a", "--host", "b"},
		{"snapshots", "--json", "--latest", "1"},
	} {
		mine, theirs := r.ok(args...), o.MustRun(dir, args...)
		if mine.stdout != string(theirs.Stdout) {
			t.Errorf("%v\ncairn:  %s\nrestic: %s", args, mine.stdout, theirs.Stdout)
		}
	}
	// Unknown IDs are reported and skipped, like restic.
	res := r.ok("snapshots", "--json", "ffffffff", a)
	if !strings.Contains(res.stderr, `Ignoring "ffffffff"`) {
		t.Errorf("%s", res)
	}
	if res := r.run("snapshots", "--group-by", "colour"); res.code != 1 {
		t.Errorf("bad --group-by: %s", res)
	}
	if res := r.run("ls"); res.code != 1 || !strings.Contains(res.stderr, "no snapshot ID") {
		t.Errorf("ls without ID: %s", res)
	}
	if res := r.run("ls", "latest", "relative/dir"); res.code != 1 || !strings.Contains(res.stderr, "absolute") {
		t.Errorf("ls with relative filter: %s", res)
	}
	if res := r.run("ls", "latest:"+src+"/nope"); res.code != 1 || !strings.Contains(res.stderr, "not found") {
		t.Errorf("ls of a missing subfolder: %s", res)
	}
	if res := r.run("restore", "latest"); res.code != 1 || !strings.Contains(res.stderr, "--target") {
		t.Errorf("restore without target: %s", res)
	}
	if res := r.run("restore", "latest", "--target", t.TempDir(), "--include", "x", "--exclude", "y"); res.code != 1 {
		t.Errorf("include and exclude: %s", res)
	}
}

// On a terminal the backup shows a status line that is redrawn in place
// (run under script(1), which gives the child a pseudo-terminal).
func TestProgressOnTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		testtools.Unavailable(t, "script(1) not available to provide a pseudo-terminal: %v", err)
	}
	dir := newRepo(t)
	src := t.TempDir()
	big := make([]byte, 6<<20)
	fillRandom(big)
	if err := os.WriteFile(src+"/big", big, 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir, "TERM=xterm")
	line := cairnBin + " --limit-upload 2048 backup " + src
	cmd := exec.CommandContext(t.Context(), script, "-qefc", line, "/dev/null")
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%q", err, out)
	}
	s := string(out)
	if !strings.Contains(s, ansiClearLine) || !strings.Contains(s, " files, ") || !strings.Contains(s, " errors") {
		t.Fatalf("no redrawn status line on a terminal:\n%q", s)
	}
	// The interval is throttled: a few redraws a second, not hundreds.
	if n := strings.Count(s, ansiClearLine); n > 60 {
		t.Errorf("%d redraws for a backup of about 3 s", n)
	}
	if !strings.Contains(s, "snapshot ") {
		t.Errorf("summary missing:\n%q", s)
	}
}

// On a terminal without a password source cairn prompts without echo and
// gives three tries, like restic (run under script(1) for a pty).
func TestPasswordPromptOnTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		testtools.Unavailable(t, "script(1) not available to provide a pseudo-terminal: %v", err)
	}
	dir := newRepo(t)
	r := newRunner(t).with("TERM=xterm")
	for _, tc := range []struct {
		answers []string
		code    int
	}{
		{[]string{"wrong-1", "wrong-2", "wrong-3"}, exitWrongPassword},
		{[]string{"wrong-1", testPassword}, 0},
	} {
		cmd := exec.CommandContext(t.Context(), script, "-qefc", cairnBin+" -r "+dir+" snapshots", "/dev/null")
		cmd.Env = r.env
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i, answer := range tc.answers {
			// Answer each prompt once it is shown (echo is off by then).
			deadline := time.Now().Add(30 * time.Second)
			for strings.Count(out.String(), "enter password for repository:") <= i {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("prompt %d not shown:\n%q", i+1, out.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond)
			if _, err := io.WriteString(stdin, answer+"\n"); err != nil {
				t.Fatal(err)
			}
		}
		err = cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		s := out.String()
		if code != tc.code {
			t.Fatalf("answers %q: exit %d (%v), want %d\n%q", tc.answers, code, err, tc.code, s)
		}
		for _, a := range tc.answers {
			if strings.Contains(s, a) {
				t.Errorf("the typed password %q was echoed:\n%q", a, s)
			}
		}
		if tries := strings.Count(s, "Try again"); tries != len(tc.answers)-1 {
			t.Errorf("%d retries announced for answers %q:\n%q", tries, tc.answers, s)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
