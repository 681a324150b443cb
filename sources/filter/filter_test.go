package filter

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/sources"
)

func TestBadSize(t *testing.T) {
	if _, err := New(Options{ExcludeLargerThan: "lots"}); err == nil || !strings.Contains(err.Error(), "--exclude-larger-than") {
		t.Errorf("New with a bad size: %v", err)
	}
}

func TestExcludedByMetadata(t *testing.T) {
	f, err := New(Options{ExcludeLargerThan: "1k"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		e    sources.Entry
		want bool
	}{
		{sources.Entry{Type: sources.File, Size: 1024}, false},
		{sources.Entry{Type: sources.File, Size: 1025}, true},
		{sources.Entry{Type: sources.Dir, Size: 1 << 30}, false},
		{sources.Entry{Type: sources.Symlink, LinkTarget: strings.Repeat("x", 1025)}, true},
		{sources.Entry{Type: sources.Symlink, LinkTarget: "short"}, false},
		{sources.Entry{Type: sources.FIFO}, false},
	}
	for _, tt := range tests {
		if got := f.ExcludedByMetadata(&tt.e); got != tt.want {
			t.Errorf("%v size %d target %d bytes: excluded %v, want %v", tt.e.Type, tt.e.Size, len(tt.e.LinkTarget), got, tt.want)
		}
	}
	none, _ := New(Options{})
	if none.ExcludedByMetadata(&sources.Entry{Type: sources.File, Size: 1 << 62}) {
		t.Error("no limit set, yet a big file was excluded")
	}
}

// peeker serves marker files from a map, like a source peeking into a
// directory.
func peeker(files map[string]string) func(string, int) ([]byte, error) {
	return func(name string, n int) ([]byte, error) {
		data, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("peek %s: %w", name, fs.ErrNotExist)
		}
		if data == "\x00unreadable" {
			return nil, fmt.Errorf("peek %s: %w", name, fs.ErrPermission)
		}
		return []byte(data[:min(n, len(data))]), nil
	}
}

func TestExcludedContents(t *testing.T) {
	sig := "Signature: 8a477f597d28d172789f06886806bc55"
	tests := []struct {
		name     string
		opts     Options
		files    map[string]string
		excluded bool
		keep     []string
		warns    int
	}{
		{"no rules", Options{}, map[string]string{".nobackup": ""}, false, nil, 0},
		{"marker absent", Options{ExcludeIfPresent: []string{".nobackup"}}, map[string]string{"x": ""}, false, nil, 0},
		{"marker present", Options{ExcludeIfPresent: []string{".nobackup"}}, map[string]string{".nobackup": ""}, true, []string{".nobackup"}, 0},
		{"header matches", Options{ExcludeIfPresent: []string{"TAG:magic"}}, map[string]string{"TAG": "magic and more"}, true, []string{"TAG"}, 0},
		{"header differs", Options{ExcludeIfPresent: []string{"TAG:magic"}}, map[string]string{"TAG": "other"}, false, nil, 1},
		{"header too short", Options{ExcludeIfPresent: []string{"TAG:magic"}}, map[string]string{"TAG": "mag"}, false, nil, 1},
		{"header with colon", Options{ExcludeIfPresent: []string{"TAG:a:b"}}, map[string]string{"TAG": "a:b"}, true, []string{"TAG"}, 0},
		{"unreadable marker", Options{ExcludeIfPresent: []string{"TAG:x"}}, map[string]string{"TAG": "\x00unreadable"}, false, nil, 1},
		{"exclude-caches", Options{ExcludeCaches: true}, map[string]string{"CACHEDIR.TAG": sig + "\n# comment"}, true, []string{"CACHEDIR.TAG"}, 0},
		{"exclude-caches bad tag", Options{ExcludeCaches: true}, map[string]string{"CACHEDIR.TAG": "Signature: wrong"}, false, nil, 1},
		{"two markers exclude each other", Options{ExcludeCaches: true, ExcludeIfPresent: []string{".nobackup"}},
			map[string]string{"CACHEDIR.TAG": sig, ".nobackup": ""}, true, nil, 0},
		{"one of two rules", Options{ExcludeCaches: true, ExcludeIfPresent: []string{".nobackup"}},
			map[string]string{".nobackup": ""}, true, []string{".nobackup"}, 0},
		{"same name twice", Options{ExcludeIfPresent: []string{"M", "M:x"}}, map[string]string{"M": "xyz"}, true, []string{"M"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			warns := 0
			tt.opts.Warn = func(string) { mu.Lock(); warns++; mu.Unlock() }
			f, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			dir := &sources.Entry{Path: "d", HostPath: "/h/d", Type: sources.Dir}
			excluded, keep := f.ExcludedContents(dir, peeker(tt.files))
			if excluded != tt.excluded || !slices.Equal(keep, tt.keep) {
				t.Errorf("excluded %v keep %q, want %v %q", excluded, keep, tt.excluded, tt.keep)
			}
			if f.ExcludedByContents(dir, peeker(tt.files)) != tt.excluded {
				t.Error("ExcludedByContents disagrees with ExcludedContents")
			}
			if warns != 2*tt.warns {
				t.Errorf("%d warnings for two calls, want %d", warns, 2*tt.warns)
			}
		})
	}
}

func TestMarkerSpecErrors(t *testing.T) {
	for _, spec := range []string{"", ":header", "a/b"} {
		if _, err := New(Options{ExcludeIfPresent: []string{spec}}); err == nil {
			t.Errorf("spec %q accepted", spec)
		}
	}
}

func TestExcludeFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := write("plain", []byte("# a comment\n\n  *.go  \n\t\n$HOME/x\n${PROJ}/build\nliteral$$dollar\n !keep.go\r\nfoo bar star.txt\n"))
	bom := write("bom", append([]byte{0xef, 0xbb, 0xbf}, "*.tmp\n"...))
	utf16 := write("utf16", []byte{0xff, 0xfe, '*', 0, '.', 0, 'b', 0, 'a', 0, 'k', 0, '\n', 0})
	env := map[string]string{"HOME": "/home/u", "PROJ": "/srv/p"}
	getenv := func(k string) string { return env[k] }
	got, err := ReadPatternFiles([]string{plain, bom, utf16}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"*.go", "/home/u/x", "/srv/p/build", "literal$dollar", "!keep.go", "foo bar star.txt", "*.tmp", "*.bak"}
	if !slices.Equal(got, want) {
		t.Errorf("patterns %q, want %q", got, want)
	}
	if _, err := ReadPatternFiles([]string{filepath.Join(dir, "missing")}, nil); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing exclude file: %v", err)
	}

	// File patterns follow --exclude, so a negation in the file cancels
	// an --exclude given on the command line.
	f, err := New(Options{Excludes: []string{"*.go"}, ExcludeFiles: []string{plain}, Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/src/a.go":              true,
		"/src/keep.go":           false,
		"/home/u/x/y":            true,
		"/srv/p/build":           true,
		"/d/foo bar star.txt":    true,
		"/d/literal$dollar":      true,
		"/d/literal":             false,
		"/home/u/other":          false,
		"/d/x.tmp":               false, // bom file not given here
		"/d/sub/KEEP.GO":         false,
		"/src/x.go/inside/a.txt": true,
	} {
		if got := f.ExcludedByName(path); got != want {
			t.Errorf("%s: excluded %v, want %v", path, got, want)
		}
	}
	bad := write("bad", []byte("ok\n[\n"))
	if _, err := New(Options{ExcludeFiles: []string{bad}}); err == nil {
		t.Error("an invalid pattern in an exclude file was accepted")
	}
	fi, err := New(Options{InsensitiveExcludeFiles: []string{bom}})
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ExcludedByName("/x/Y.TMP") {
		t.Error("--iexclude-file pattern did not ignore case")
	}
}

func TestExcludedCombines(t *testing.T) {
	f, err := New(Options{Excludes: []string{"*.log"}, InsensitiveExcludes: []string{"CACHE"}, ExcludeLargerThan: "100"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		e    sources.Entry
		want bool
	}{
		{sources.Entry{HostPath: "/a/x.log", Type: sources.File, Size: 1}, true},
		{sources.Entry{HostPath: "/a/cache", Type: sources.Dir}, true},
		{sources.Entry{HostPath: "/a/x.txt", Type: sources.File, Size: 101}, true},
		{sources.Entry{HostPath: "/a/x.txt", Type: sources.File, Size: 100}, false},
		{sources.Entry{HostPath: "", Type: sources.File}, false},
	}
	for _, tt := range tests {
		if got := f.Excluded(&tt.e); got != tt.want {
			t.Errorf("%q: excluded %v, want %v", tt.e.HostPath, got, tt.want)
		}
	}
}
