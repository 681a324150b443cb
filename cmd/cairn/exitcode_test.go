package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/repo"
)

func TestExitWrongPassword(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_REPOSITORY=" + dir)
	for _, args := range [][]string{{"snapshots"}, {"--json", "snapshots"}, {"backup", t.TempDir()}, {"ls", "latest"}} {
		res := r.with("RESTIC_PASSWORD=wrong").withStdin(strings.NewReader("")).expect(exitWrongPassword, args...)
		if !strings.Contains(res.stderr, "wrong password") {
			t.Errorf("%v: exit 12 without saying why:\n%s", args, res)
		}
		if args[0] == "--json" {
			msgs := jsonLines(t, res.stderr)
			if len(msgs) != 1 || msgs[0]["message_type"] != "exit_error" || msgs[0]["code"] != float64(12) {
				t.Errorf("--json exit error: %v", msgs)
			}
		}
	}
	// The same code as restic.
	o := oracleFor(t)
	if res := o.WithPassword("wrong").Run(dir, "snapshots"); res.ExitCode != exitWrongPassword {
		t.Errorf("restic exits with %d", res.ExitCode)
	}
}

func TestExitNoRepository(t *testing.T) {
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	missing := filepath.Join(t.TempDir(), "nothing-here")
	empty := t.TempDir() // exists, but holds no config
	for _, dir := range []string{missing, empty} {
		for _, args := range [][]string{{"snapshots"}, {"backup", t.TempDir()}, {"cat", "config"}, {"key", "list"}, {"unlock"}} {
			res := r.expect(exitNoRepository, append([]string{"-r", dir}, args...)...)
			if !strings.Contains(res.stderr, "repository does not exist") || !strings.Contains(res.stderr, dir) {
				t.Errorf("%s %v: %s", dir, args, res)
			}
		}
	}
	// With no password at all cairn still says the repository is missing
	// rather than asking for a password.
	newRunner(t).withStdin(strings.NewReader("")).expect(exitNoRepository, "-r", missing, "snapshots")
}

// A lock held by another process: exit 11, naming the holder.
func TestExitLocked(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	r.ok("backup", t.TempDir()) // a snapshot for restore to find
	lk := openRepo(t, dir)
	_, held, err := lk.Lock(context.Background(), true, repo.LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	host, _ := os.Hostname()
	// restore is refused with a snapshot to restore and without one (like
	// restic, which locks before it looks).
	for _, args := range [][]string{{"backup", t.TempDir()}, {"snapshots"}, {"key", "add"}, {"restore", "latest", "--target", t.TempDir()}, {"restore", "deadbeef", "--target", t.TempDir()}} {
		res := r.expect(exitLocked, args...)
		for _, want := range []string{"locked exclusively", "PID " + strconv.Itoa(os.Getpid()), host, "unlock"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("%v: message does not contain %q:\n%s", args, want, res)
			}
		}
		// Like restic, say what is restored only once the lock is held.
		if strings.Contains(res.stdout, "restoring") {
			t.Errorf("%v: announces a restore it was refused:\n%s", args, res)
		}
	}
	// --no-lock reads anyway.
	r.ok("--no-lock", "snapshots")
	if res := r.ok("--no-lock", "restore", "latest", "--target", t.TempDir()); !strings.Contains(res.stdout, "restoring") {
		t.Errorf("restore --no-lock does not say what it restores:\n%s", res)
	}
	// --retry-lock waits, says so, then gives up with 11.
	start := time.Now()
	res := r.expect(exitLocked, "--retry-lock", "1s", "snapshots")
	if time.Since(start) < time.Second || !strings.Contains(res.stdout+res.stderr, "waiting up to 1s") {
		t.Errorf("--retry-lock 1s: after %v:\n%s", time.Since(start), res)
	}
	// The holder is restic's idea of a lock too.
	if code := oracleFor(t).Run(dir, "backup", t.TempDir()).ExitCode; code != exitLocked {
		t.Errorf("restic exits with %d", code)
	}
	// Our own locks are gone after each run: only the holder's is left.
	holder := held.Lock()
	if locks := lockFiles(t, dir); len(locks) != 1 || locks[0] != holder.ID().String() {
		t.Errorf("locks left: %v", locks)
	}
}

// An unreadable file: a warning, the snapshot is still written, exit 3.
// Root reads everything, so as root the backup runs as user nobody.
func TestExitUnreadableFile(t *testing.T) {
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	base, err := os.MkdirTemp("", "cairn-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testtree.MakeRemovable(t, base); os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(base, "repo")
	src := filepath.Join(base, "src")
	m := testtree.Build(t, src, testtree.Options{UnreadableOnly: true})
	writeFiles(t, src, map[string]string{"readable.txt": "fine\n"})
	r.ok("init", "-r", repoDir)
	if os.Geteuid() == 0 {
		const nobody = 65534
		if err := chownTree(repoDir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		home := filepath.Join(base, "home")
		if err := os.Mkdir(home, 0o700); err != nil || os.Chown(home, nobody, nobody) != nil {
			t.Fatalf("home for nobody: %v", err)
		}
		r = r.with("HOME=" + home)
		r.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	res := r.expect(exitIncomplete, "-r", repoDir, "--no-cache", "backup", src)
	if !strings.Contains(res.stderr, "permission denied") || !strings.Contains(res.stderr, "Warning: at least one source file could not be read") {
		t.Errorf("warnings missing:\n%s", res)
	}
	if !strings.Contains(res.stdout, "snapshot ") || !strings.Contains(res.stdout, " saved") {
		t.Errorf("no snapshot saved:\n%s", res)
	}
	// JSON mode reports each as an error message on stderr.
	res = r.expect(exitIncomplete, "-r", repoDir, "--no-cache", "--json", "backup", src)
	errs := 0
	for _, msg := range jsonLines(t, res.stderr) {
		if msg["message_type"] == "error" && msg["during"] == "archival" && strings.HasPrefix(msg["item"].(string), src) {
			errs++
		}
	}
	if errs == 0 {
		t.Errorf("no JSON error messages:\n%s", res)
	}
	o := oracleFor(t)
	if n := len(o.Snapshots(repoDir)); n != 2 {
		t.Errorf("restic sees %d snapshots, want 2", n)
	}
	o.MustCheck(repoDir, true)
	// What could be read is in the snapshot.
	ls := r.ok("-r", repoDir, "--no-cache", "ls", "latest").stdout
	if !strings.Contains(ls, "/readable.txt") || !strings.Contains(ls, m.Root) {
		t.Errorf("ls of the incomplete snapshot:\n%s", ls)
	}
}

func chownTree(root string, uid, gid int) error {
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// SIGINT (and SIGTERM) during a backup: exit 130, no snapshot, no lock
// left, and a repository restic checks clean.
func TestExitInterrupted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := newRepo(t)
			src := t.TempDir()
			// 24 MiB of incompressible data at 2 MiB/s: a backup of about
			// 12 s, interrupted after the first pack is stored.
			big := make([]byte, 24<<20)
			fillRandom(big)
			if err := os.WriteFile(filepath.Join(src, "big"), big, 0o644); err != nil {
				t.Fatal(err)
			}
			r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
			cmd := r.command(t.Context(), "--limit-upload", "2048", "--pack-size", "4", "backup", src)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for len(lockIDs(t, dir)) == 0 || countFiles(t, filepath.Join(dir, "data")) == 0 {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("backup stored no pack within a minute\n%s\n%s", stdout.String(), stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			if code != exitInterrupted {
				t.Fatalf("exit %d (%v), want 130\nstdout:\n%s\nstderr:\n%s", code, err, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), "received, cleaning up") {
				t.Errorf("no signal message:\n%s", stderr.String())
			}
			if locks := lockFiles(t, dir); len(locks) != 0 {
				t.Errorf("locks left behind: %v", locks)
			}
			o := oracleFor(t)
			if n := len(o.Snapshots(dir)); n != 0 {
				t.Errorf("%d snapshots after an interrupted backup", n)
			}
			o.MustCheck(dir, true)
			// The next backup works and reuses what was uploaded.
			r.ok("backup", src)
			o.MustCheck(dir, false)
		})
	}
}

// countFiles counts the complete repository files below dir (named by
// their ID; temporary files of running uploads are not).
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && len(fi.Name()) == 64 {
			n++
		}
		return nil
	})
	return n
}

// fillSeq makes every fillRandom call produce different bytes.
var fillSeq atomic.Uint64

// fillRandom fills b with cheap, incompressible bytes, different on every
// call: files filled one after another must not deduplicate against each
// other, or a test meant to upload many packs uploads one.
func fillRandom(b []byte) {
	x := uint64(0x9e3779b97f4a7c15) + fillSeq.Add(1)*0x2545f4914f6cdd1d
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for j := 0; j < 8; j++ {
			b[i+j] = byte(x >> (8 * j))
		}
	}
}

// SIGINT during a restore: exit 130 and the lock is released.
func TestExitInterruptedRestore(t *testing.T) {
	dir := newRepo(t)
	src := t.TempDir()
	big := make([]byte, 16<<20)
	fillRandom(big)
	if err := os.WriteFile(filepath.Join(src, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	r.ok("--no-cache", "backup", src)
	target := t.TempDir()
	cmd := r.command(t.Context(), "--no-cache", "--limit-download", "1024", "restore", "latest", "--target", target)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(lockIDs(t, dir)) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("restore took no lock within a minute:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d, want 130:\n%s", code, out.String())
	}
	if locks := lockFiles(t, dir); len(locks) != 0 {
		t.Errorf("locks left behind: %v", locks)
	}
}

// Command-line mistakes cobra catches before a command starts (unknown
// flag or command, a flag value that does not parse) are printed the way
// restic prints them: the bare message, no "Fatal: ", exit status 1.
func TestUsageErrorsLikeRestic(t *testing.T) {
	r := newRunner(t)
	for _, args := range [][]string{
		{"--no-such-flag", "snapshots"},
		{"no-such-command"},
		{"snapshots", "--latest", "x"},
		{"forget", "--keep-last"},
	} {
		want := oracleFor(t).Run("", args...)
		got := r.run(args...)
		wantMsg := strings.ReplaceAll(strings.TrimSpace(string(want.Stderr)), `"restic"`, `"cairn"`)
		if got.code != want.ExitCode || strings.TrimSpace(got.stderr) != wantMsg {
			t.Errorf("cairn %q: exit %d, stderr %q; restic: exit %d, stderr %q", args, got.code, got.stderr, want.ExitCode, wantMsg)
		}
	}
}
