package stdin_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/stdin"
)

// recorder is a Visitor that reads each file during Visit, as the backup
// of a streamed source must.
type recorder struct {
	entries []sources.Entry
	content map[string][]byte
	readErr map[string]error
	left    []string
}

func (r *recorder) Visit(ctx context.Context, e *sources.Entry) error {
	r.entries = append(r.entries, *e)
	if e.Type != sources.File {
		return nil
	}
	if r.content == nil {
		r.content, r.readErr = map[string][]byte{}, map[string]error{}
	}
	rc, err := e.Open(ctx)
	if err != nil {
		r.readErr[e.Path] = err
		return nil
	}
	defer rc.Close()
	r.content[e.Path], r.readErr[e.Path] = io.ReadAll(rc)
	return nil
}

func (r *recorder) LeaveDir(ctx context.Context, path string) error {
	r.left = append(r.left, path)
	return nil
}

var when = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func TestSyntheticFile(t *testing.T) {
	src, err := stdin.New(strings.NewReader("hello"), stdin.Options{Filename: "foo.txt", Time: when, Hostname: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	info := src.Info()
	if !info.Streamed || info.Hostname != "h1" || len(info.Paths) != 1 || info.Paths[0] != "/foo.txt" {
		t.Fatalf("Info = %+v", info)
	}
	var rec recorder
	if err := src.Walk(context.Background(), sources.WalkOptions{}, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.entries) != 1 {
		t.Fatalf("visited %d entries, want 1", len(rec.entries))
	}
	e := rec.entries[0]
	want := sources.Entry{Path: "foo.txt", HostPath: "/foo.txt", Type: sources.File, Mode: 0o644,
		ModTime: when, AccessTime: when, ChangeTime: when,
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	e.Open, e.Size = nil, 0
	if e.Path != want.Path || e.HostPath != want.HostPath || e.Type != want.Type || e.Mode != want.Mode ||
		!e.ModTime.Equal(when) || !e.AccessTime.Equal(when) || !e.ChangeTime.Equal(when) ||
		e.UID != want.UID || e.GID != want.GID || e.User != "" || e.Group != "" || e.Inode != 0 || e.Links != 0 || e.DeviceID != 0 {
		t.Errorf("entry = %+v, want %+v", e, want)
	}
	if string(rec.content["foo.txt"]) != "hello" || rec.readErr["foo.txt"] != nil {
		t.Errorf("content %q, err %v", rec.content["foo.txt"], rec.readErr["foo.txt"])
	}
	if len(rec.left) != 1 || rec.left[0] != "" {
		t.Errorf("LeaveDir calls %q, want only the root", rec.left)
	}
	if err := src.Walk(context.Background(), sources.WalkOptions{}, &rec); err == nil {
		t.Error("second walk of a stream succeeded")
	}
}

func TestFilenameCleaning(t *testing.T) {
	tests := []struct{ in, path string }{
		{"", "/stdin"},
		{"/abs/name", "/abs/name"},
		{"db/../dump.sql", "/dump.sql"},
		{"./a//b", "/a/b"},
	}
	for _, tc := range tests {
		src, err := stdin.New(strings.NewReader("x"), stdin.Options{Filename: tc.in})
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got := src.Info().Paths; len(got) != 1 || got[0] != tc.path {
			t.Errorf("Filename %q: paths %q, want [%q]", tc.in, got, tc.path)
		}
	}
	for _, bad := range []string{"/", "..", "a\x00b"} {
		if _, err := stdin.New(strings.NewReader("x"), stdin.Options{Filename: bad}); err == nil {
			t.Errorf("Filename %q accepted", bad)
		}
	}
}

func TestNestedFilenameMakesDirectories(t *testing.T) {
	src, err := stdin.New(strings.NewReader("dump"), stdin.Options{Filename: "db/pg/dump.sql", Time: when})
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	if err := src.Walk(context.Background(), sources.WalkOptions{}, &rec); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range rec.entries {
		got = append(got, e.Path+":"+e.Type.String())
		if e.Type == sources.Dir && (e.Mode != fs.ModeDir|0o755 || !e.ModTime.Equal(when)) {
			t.Errorf("directory %s: mode %v mtime %v", e.Path, e.Mode, e.ModTime)
		}
	}
	if strings.Join(got, " ") != "db:dir db/pg:dir db/pg/dump.sql:file" {
		t.Errorf("visited %v", got)
	}
	if strings.Join(rec.left, ",") != "db/pg,db," {
		t.Errorf("left %q, want deepest first then the root", rec.left)
	}
}

func TestEmptyStreamIsAReadError(t *testing.T) {
	src, err := stdin.New(strings.NewReader(""), stdin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	if err := src.Walk(context.Background(), sources.WalkOptions{}, &rec); err != nil {
		t.Fatal(err)
	}
	if err := rec.readErr["stdin"]; !errors.Is(err, stdin.ErrEmpty) {
		t.Fatalf("read error %v, want ErrEmpty", err)
	}
}

// A reader that blocks forever (a terminal nobody types into) must not
// keep a cancelled walk waiting.
func TestCancelWhileStdinBlocks(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	src, err := stdin.New(pr, stdin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	go func() {
		time.Sleep(100 * time.Millisecond)
		once.Do(cancel)
	}()
	var rec recorder
	done := make(chan error, 1)
	go func() { done <- src.Walk(ctx, sources.WalkOptions{}, &rec) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("walk still blocked 10 s after cancel")
	}
	if err := rec.readErr["stdin"]; !errors.Is(err, context.Canceled) {
		t.Fatalf("read error %v, want context.Canceled", err)
	}
}
