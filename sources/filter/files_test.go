package filter

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFilesFrom(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.txt", "b.txt", "c.log", "#hash", " space "} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list := func(name, content string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	patterns := list("patterns", "# comment\n\n  "+dir+"/*.txt  \r\n"+dir+"/nothing-*\n"+dir+"/c.log\n")
	verbatim := list("verbatim", dir+"/#hash\n\n"+dir+"/ space \n"+dir+"/*.txt\n")
	raw := list("raw", dir+"/new\nline\x00"+dir+"/bad\xff\x00")

	var warns []string
	ff := FilesFrom{
		Patterns: []string{patterns},
		Verbatim: []string{verbatim},
		Raw:      []string{raw, "-"},
		Stdin:    strings.NewReader("from-stdin\x00"),
		Warn:     func(m string) { warns = append(warns, m) },
	}
	got, err := ff.Targets([]string{"arg1", "arg2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		dir + "/a.txt", dir + "/b.txt", dir + "/c.log", // globbed, sorted by Glob
		dir + "/#hash", dir + "/ space ", dir + "/*.txt", // verbatim: no trimming, no comments, no globbing
		dir + "/new\nline", dir + "/bad\xff", "from-stdin", // raw
		"arg1", "arg2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("targets\n%q\nwant\n%q", got, want)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "nothing-*") {
		t.Errorf("warnings %q, want one about the pattern that matches nothing", warns)
	}
}

func TestFilesFromErrors(t *testing.T) {
	tests := []struct {
		name string
		ff   FilesFrom
		want string
	}{
		{"raw without final NUL", FilesFrom{Raw: []string{"-"}, Stdin: strings.NewReader("a\x00b")}, "trailing zero byte"},
		{"raw with empty name", FilesFrom{Raw: []string{"-"}, Stdin: strings.NewReader("a\x00\x00")}, "empty file name"},
		{"bad glob", FilesFrom{Patterns: []string{"-"}, Stdin: strings.NewReader("[\n")}, "pattern"},
		{"missing list", FilesFrom{Verbatim: []string{"/nonexistent/list"}}, "no such file"},
		{"stdin without reader", FilesFrom{Patterns: []string{"-"}}, "standard input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.ff.Targets(nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestReadFilesFromUTF16(t *testing.T) {
	// "x\n" in UTF-16, big endian with a byte-order mark.
	got, err := ReadFilesFromVerbatim(strings.NewReader("\xfe\xff\x00x\x00\n"))
	if err != nil || !slices.Equal(got, []string{"x"}) {
		t.Errorf("got %q, %v", got, err)
	}
	got, err = ReadFilesFromRaw(strings.NewReader(""))
	if err != nil || len(got) != 0 {
		t.Errorf("empty raw list: %q, %v", got, err)
	}
}
