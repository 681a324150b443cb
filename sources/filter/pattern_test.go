package filter

import (
	"strings"
	"testing"
)

// Cases follow restic's documentation (doc/040_backup.rst, "Excluding
// files") and the corner cases observed with restic 0.19.1.
func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		path    string
		want    bool
	}{
		// A pattern matches whole components, anywhere after the root.
		{"foo", "/dir1/foo/dir2/file", true},
		{"foo", "/dir/foo", true},
		{"foo", "/dir/foobar", false},
		{"foo", "/barfoo", false},
		{"foo", "foo/bar", true}, // relative paths too
		// A leading "/" anchors; a trailing "/" is ignored.
		{"/bin", "/bin/bash", true},
		{"/bin", "/usr/bin/restic", false},
		{"/bin/", "/bin/bash", true},
		{"bin/", "/usr/bin/restic", true},
		{"/bin", "bin/bash", false},
		// Wildcards stay inside one component.
		{"b*ash", "/bin/bash", true},
		{"b*ash", "/bin/ash", false},
		{"*.c", "/src/main.c", true},
		{"*.c", "/src/x.c/inner", true},
		{"*.c", "/src/main.cc", false},
		{"/src/*", "/src/a/b", true},
		{"/src/*", "/src", false},
		{"a/b", "/x/a/b/c", true},
		{"a/b", "/a/x/b", false},
		{"[abc].txt", "/d/b.txt", true},
		{"[abc].txt", "/d/d.txt", false},
		{"[^abc].txt", "/d/d.txt", true},
		{"[!abc].txt", "/d/d.txt", false}, // Go's class negation is "^"
		{"[!abc].txt", "/d/!.txt", true},
		{`\*.txt`, "/d/*.txt", true},
		{`\*.txt`, "/d/x.txt", false},
		{"?", "/a/b", true},
		{"??", "/a/b", false},
		// "**" spans any number of components.
		{"foo/**/bar", "/dir1/foo/dir2/bar/file", true},
		{"foo/**/bar", "/foo/bar/file", true},
		{"foo/**/bar", "/tmp/foo/bar", true},
		{"foo/**/bar", "/tmp/foo/a/b/c/bar", true},
		{"foo/**/bar", "/tmp/foo/a/b/c/baz", false},
		{"/home/user/repos/**/target", "/home/user/repos/repo1/target", true},
		{"/home/user/repos/**/target", "/home/user/repos/repo2_workspace/project1/target", true},
		{"/home/user/repos/**/target", "/home/user/repos/repo3/bin", false},
		{"/home/user/repos/**/target", "/home/user/repos/target", true},
		{"/home/user/repos/**/target", "/other/home/user/repos/x/target", false},
		{"**", "/a", true},
		{"**/x", "/a/b/x", true},
		{"**/x", "/x", true},
		{"/**/x", "/a/b/x", true},
		{"x/**", "/a/x/y", true},
		{"x/**", "/a/x", true},
		// restic's bound on expanding the first "**" makes a pattern with
		// two of them miss a path that ends where the pattern could end.
		{"/**/a/**", "/x/y/a", false},
		{"/**/a/**", "/x/y/a/z", true},
		{"/**/a/**", "/a/z", true},
		// "/" (Clean leaves an empty component) behaves like "/**".
		{"/", "/anything/at/all", true},
		// Odd bytes are just bytes.
		{"bad\xffutf8", "/names/bad\xffutf8", true},
		{"new\nline", "/names/new\nline", true},
		{"*\xff*", "/names/bad\xffutf8", true},
		{"ü*", "/x/ünïcödé", true},
		{"", "/x", false},
	}
	for _, tt := range tests {
		if tt.pattern == "" {
			if _, err := ParsePattern(""); err == nil {
				t.Error("empty pattern accepted")
			}
			continue
		}
		p, err := ParsePattern(tt.pattern)
		if err != nil {
			t.Errorf("ParsePattern(%q): %v", tt.pattern, err)
			continue
		}
		if got := p.Match(tt.path); got != tt.want {
			t.Errorf("%q matching %q: %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

func TestParsePatternInvalid(t *testing.T) {
	for _, s := range []string{"[", "a/[b", `trailing\`, "x/[]/y"} {
		if _, err := ParsePattern(s); err == nil {
			t.Errorf("ParsePattern(%q) accepted an invalid pattern", s)
		}
	}
	if _, err := New(Options{Excludes: []string{"ok", "["}}); err == nil || !strings.Contains(err.Error(), "--exclude") {
		t.Errorf("New with a bad --exclude: %v", err)
	}
	if _, err := New(Options{InsensitiveExcludes: []string{"a/[b"}}); err == nil || !strings.Contains(err.Error(), "--iexclude") {
		t.Errorf("New with a bad --iexclude: %v", err)
	}
}

// TestPatternList checks the order and negation rules: the last matching
// pattern decides, and a negation only re-includes what an earlier
// pattern excluded.
func TestPatternList(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		lower    bool
		path     string
		want     bool
	}{
		{"plain", []string{"*.go"}, false, "/src/a.go", true},
		{"no match", []string{"*.go"}, false, "/src/a.c", false},
		{"negated later", []string{"*", "!*.go"}, false, "/src/a.go", false},
		{"negation first has no effect", []string{"!*.go", "*"}, false, "/src/a.go", true},
		{"re-excluded", []string{"*.go", "!main.go", "/src/*"}, false, "/src/main.go", true},
		{"home example, kept dir", []string{"/home/u/*", "!/home/u/Documents"}, false, "/home/u/Documents", false},
		{"home example, inside kept dir", []string{"/home/u/*", "!/home/u/Documents"}, false, "/home/u/Documents/x", false},
		{"home example, other dir", []string{"/home/u/*", "!/home/u/Documents"}, false, "/home/u/Music", true},
		{"empty patterns ignored", []string{"", "x"}, false, "/x", true},
		{"case sensitive", []string{"*.LOG"}, false, "/a/app.log", false},
		{"case insensitive", []string{"*.LOG"}, true, "/a/app.log", true},
		{"case insensitive path", []string{"/Home/*"}, true, "/HOME/U", true},
		{"case insensitive negation", []string{"*", "!*.TXT"}, true, "/a/b.txt", false},
		{"empty path", []string{"*"}, false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := newPatternList(tt.patterns, tt.lower)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.matches(tt.path); got != tt.want {
				t.Errorf("%q on %q: %v, want %v", tt.patterns, tt.path, got, tt.want)
			}
		})
	}
}

func BenchmarkPatternList(b *testing.B) {
	l, err := newPatternList([]string{"*.o", "node_modules", "/home/*/.cache", "foo/**/bar", "!keep.o"}, false)
	if err != nil {
		b.Fatal(err)
	}
	path := "/home/user/src/project/internal/pkg/file.go"
	for b.Loop() {
		l.matches(path)
	}
}
