package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-backup/cairn/sources"
)

// nobody is the uid and gid the unprivileged child process runs as.
const nobody = 65534

func (s *suite) testUnreadable(t *testing.T) {
	if s.h.ReaderPrivileged != nil {
		if s.h.ReaderPrivileged() {
			t.Fatal("the source reads with privileges, so nothing in the fixture is unreadable to it; run its reader as a normal user")
		}
	} else if os.Geteuid() == 0 {
		runUnprivileged(t)
		return
	}
	opts := s.h.Fixture
	opts.UnreadableOnly = true

	t.Run("Continue", func(t *testing.T) {
		f := s.open(t, opts)
		if f.info.Streamed {
			t.Skip("a stream holds what its producer could read: nothing in it is unreadable to the source")
		}
		r := newRecorder(false)
		if err := r.walk(t, f, sources.WalkOptions{}); err != nil {
			t.Fatalf("Walk: %v (OnError returned nil every time, so the walk must go on)", err)
		}
		noexec := "unreadable/noexec/x"
		if s.h.HidesUnsearchable {
			noexec = "unreadable/noexec"
		}
		for _, p := range []string{"unreadable/dir", noexec} {
			rep, ok := r.errorFor("/" + p)
			switch {
			case !ok:
				t.Errorf("no OnError call for %s; reported: %v", p, r.errs)
			case !errors.Is(rep.err, fs.ErrPermission):
				t.Errorf("OnError(%q, %v): the error does not wrap fs.ErrPermission", rep.path, rep.err)
			}
		}
		for _, p := range []string{"unreadable/dir/inside", "unreadable/noexec/x"} {
			if _, ok := r.entries[f.snap(p)]; ok {
				t.Errorf("%s visited although it cannot be reached", p)
			}
		}
		for _, p := range []string{"unreadable", "unreadable/noexec", "unreadable/file", "unreadable/zz-after"} {
			if _, ok := r.entries[f.snap(p)]; !ok {
				t.Errorf("%s not visited: the walk must go on after an unreadable entry", p)
			}
		}
		if e := r.entries[f.snap("unreadable/file")]; e != nil && e.Open != nil {
			rc, err := e.Open(t.Context())
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("reading a 0000 file: %v, want an error wrapping fs.ErrPermission", err)
			}
		}
		checkOrder(t, r, false)
	})

	t.Run("Stop", func(t *testing.T) {
		f := s.open(t, opts)
		if f.info.Streamed {
			t.Skip("a stream holds what its producer could read: nothing in it is unreadable to the source")
		}
		r := newRecorder(false)
		stop := errors.New("stop here")
		r.errResult = stop
		err := r.walk(t, f, sources.WalkOptions{})
		if !errors.Is(err, stop) {
			t.Fatalf("Walk: %v, want the error OnError returned", err)
		}
		if _, ok := r.entries[f.snap("unreadable/zz-after")]; ok {
			t.Error("the walk went on after OnError returned an error")
		}
	})
}

// runUnprivileged re-runs the calling subtest in a copy of the test
// binary running as nobody, and fails if the copy fails or does not run it.
func runUnprivileged(t *testing.T) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "sourcetest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sourcetest.test")
	if err := copyFile(exe, bin); err != nil {
		t.Fatal(err)
	}
	pattern := runPattern(t.Name())
	cmd := exec.CommandContext(t.Context(), bin, "-test.run="+pattern, "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv+"=1", "TMPDIR="+dir, "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()+" ") {
		t.Fatalf("unprivileged run of %s (uid %d, -test.run=%s): %v\n%s", t.Name(), nobody, pattern, err, out)
	}
	t.Logf("ran as uid %d in a child process:\n%s", nobody, out)
}

// runPattern is a -test.run pattern selecting exactly the named test.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy test binary: %w", err)
	}
	return out.Close()
}

func (s *suite) testVanished(t *testing.T) {
	opts := s.h.Fixture
	f := s.open(t, opts)
	if f.info.Streamed {
		t.Skip("a stream already holds the content: nothing can vanish from it")
	}
	victim := fmt.Sprintf("many/f%05d", opts.SmallFiles-1)
	if _, ok := f.m.Lookup(victim); !ok {
		t.Fatalf("fixture has no %s", victim)
	}
	r := newRecorder(false)
	r.onVisit = func(_ context.Context, e *sources.Entry) error {
		if e.Path == f.snap("many") {
			return os.Remove(filepath.Join(f.m.Root, victim))
		}
		return nil
	}
	if err := r.walk(t, f, sources.WalkOptions{}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	for _, rep := range r.errs {
		if !strings.HasSuffix(rep.path, "/"+victim) {
			t.Errorf("OnError(%q, %v) for something that did not vanish", rep.path, rep.err)
		} else if !errors.Is(rep.err, sources.ErrVanished) {
			t.Errorf("OnError(%q, %v): the error does not wrap sources.ErrVanished", rep.path, rep.err)
		}
	}
	e, visited := r.entries[f.snap(victim)]
	_, reported := r.errorFor("/" + victim)
	switch {
	case visited && reported:
		t.Errorf("%s both visited and reported as vanished", victim)
	case visited:
		// Listed and stat'ed before it went: reading it must say so.
		_, err := hashOpen(t.Context(), e)
		if !errors.Is(err, sources.ErrVanished) {
			t.Errorf("Open of a file deleted after the walk listed it: %v, want an error wrapping sources.ErrVanished", err)
		}
	case reported:
		t.Logf("%s reported as vanished during the walk", victim)
	default:
		t.Logf("%s was gone before the walk listed its directory", victim)
	}
	if _, ok := r.entries[f.snap("many/f00000")]; !ok {
		t.Error("many/f00000 missing: a vanished sibling must not cost others")
	}
}

func (s *suite) testCancel(t *testing.T) {
	f := s.open(t, s.h.Fixture)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := newRecorder(f.info.Streamed)
	visits, late := 0, 0
	r.onVisit = func(vctx context.Context, e *sources.Entry) error {
		visits++
		if visits > 20 {
			late++ // cancel was called at visit 20: no more visits
		}
		if visits == 20 {
			cancel()
		}
		return nil
	}
	err := f.src.Walk(ctx, sources.WalkOptions{OnError: r.onErrorFunc}, r)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Walk after cancel: %v, want an error wrapping context.Canceled", err)
	}
	if late > 0 {
		t.Errorf("%d entries visited after the context was cancelled", late)
	}
	if visits < 20 {
		t.Fatalf("only %d visits; the fixture is too small for this test", visits)
	}
}
