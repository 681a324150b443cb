package stdin_test

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/stdin"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testtools.Unavailable(t, "%s not in PATH: %v", name, err)
	}
	return p
}

// The arguments reach the command exactly as given: no shell expands
// variables, globs, quotes or separators.
func TestCommandArgumentsNotThroughShell(t *testing.T) {
	needTool(t, "printf")
	hostile := "a b; echo pwned $HOME `id` * 'q' \"d\" | cat > /dev/null"
	src, err := stdin.FromCommand([]string{"printf", "%s", hostile}, stdin.Options{Filename: "out.txt"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var rec recorder
	if err := src.Walk(context.Background(), sources.WalkOptions{}, &rec); err != nil {
		t.Fatal(err)
	}
	if got := string(rec.content["out.txt"]); got != hostile || rec.readErr["out.txt"] != nil {
		t.Fatalf("content %q (err %v), want %q", got, rec.readErr["out.txt"], hostile)
	}
}

func TestCommandLargeOutput(t *testing.T) {
	needTool(t, "head")
	src, err := stdin.FromCommand([]string{"head", "-c", "5000000", "/dev/zero"}, stdin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	if err := src.Walk(context.Background(), sources.WalkOptions{}, &rec); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.content["stdin"]); n != 5000000 {
		t.Fatalf("read %d bytes, want 5000000", n)
	}
}

// A failing command fails the walk (and so the backup), and its standard
// error reaches the callback line by line.
func TestCommandFailureFailsWalk(t *testing.T) {
	needTool(t, "sh")
	for _, tc := range []struct {
		name, script string
		output       string
	}{
		{"with output", "echo partial; echo oops >&2; echo second >&2; exit 3", "partial\n"},
		{"without output", "echo oops >&2; echo second >&2; exit 3", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var lines []string
			src, err := stdin.FromCommand([]string{"sh", "-c", tc.script}, stdin.Options{
				Stderr: func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() },
			})
			if err != nil {
				t.Fatal(err)
			}
			var rec recorder
			err = src.Walk(context.Background(), sources.WalkOptions{}, &rec)
			if err == nil || !strings.Contains(err.Error(), "exit status 3") {
				t.Fatalf("Walk = %v, want the command's exit status", err)
			}
			// The empty-stream warning would be noise next to the failure.
			if errors.Is(rec.readErr["stdin"], stdin.ErrEmpty) {
				t.Errorf("failed command also reported as empty stream")
			}
			if string(rec.content["stdin"]) != tc.output {
				t.Errorf("content %q, want %q", rec.content["stdin"], tc.output)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(lines, "|") != "oops|second" {
				t.Errorf("stderr lines %q", lines)
			}
		})
	}
}

func TestCommandSucceedsWithNoOutputIsEmpty(t *testing.T) {
	needTool(t, "true")
	src, err := stdin.FromCommand([]string{"true"}, stdin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	if err := src.Walk(context.Background(), sources.WalkOptions{}, &rec); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rec.readErr["stdin"], stdin.ErrEmpty) {
		t.Fatalf("read error %v, want ErrEmpty", rec.readErr["stdin"])
	}
}

func TestCommandNotFound(t *testing.T) {
	src, err := stdin.FromCommand([]string{"cairn-no-such-command-xyz"}, stdin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	err = src.Walk(context.Background(), sources.WalkOptions{}, &rec)
	if err == nil || !strings.Contains(err.Error(), "cairn-no-such-command-xyz") {
		t.Fatalf("Walk = %v, want an error naming the command", err)
	}
	if len(rec.entries) != 0 {
		t.Errorf("visited %d entries of a command that never ran", len(rec.entries))
	}
	if _, err := stdin.FromCommand(nil, stdin.Options{}); err == nil {
		t.Error("empty argv accepted")
	}
}

func TestCommandCancelKills(t *testing.T) {
	needTool(t, "sleep")
	src, err := stdin.FromCommand([]string{"sleep", "60"}, stdin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	var rec recorder
	err = src.Walk(ctx, sources.WalkOptions{}, &rec)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Walk = %v, want the context's error", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("cancelled walk took %v", d)
	}
}

// A visitor that never reads the content (a failed backup) must not leave
// the command running.
func TestCommandUnreadOutputIsStopped(t *testing.T) {
	needTool(t, "yes")
	src, err := stdin.FromCommand([]string{"yes"}, stdin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- src.Walk(context.Background(), sources.WalkOptions{}, skipper{}) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not read to the end") {
			t.Fatalf("Walk = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("walk did not return: command left running")
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
}

type skipper struct{}

func (skipper) Visit(context.Context, *sources.Entry) error { return nil }
func (skipper) LeaveDir(context.Context, string) error      { return nil }

// Readers may call Read again after EOF (the chunker does); the pipe that
// Wait closed must not turn that into an error.
func TestCommandReadAfterEOF(t *testing.T) {
	needTool(t, "printf")
	src, err := stdin.FromCommand([]string{"printf", "abc"}, stdin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Walk(context.Background(), sources.WalkOptions{}, visitFunc(func(ctx context.Context, e *sources.Entry) error {
		rc, err := e.Open(ctx)
		if err != nil {
			return err
		}
		buf := make([]byte, 10)
		n, err := io.ReadFull(rc, buf)
		if n != 3 || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ReadFull = %d, %v", n, err)
		}
		for i := 0; i < 3; i++ {
			if n, err := rc.Read(buf); n != 0 || err != io.EOF {
				t.Errorf("read after EOF = %d, %v; want 0, io.EOF", n, err)
			}
		}
		return rc.Close()
	}))
	if err != nil {
		t.Fatal(err)
	}
}

type visitFunc func(ctx context.Context, e *sources.Entry) error

func (f visitFunc) Visit(ctx context.Context, e *sources.Entry) error { return f(ctx, e) }
func (visitFunc) LeaveDir(context.Context, string) error              { return nil }
