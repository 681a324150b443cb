package filter_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/filter"
)

// TestPatternsAgainstRestic backs up one small tree with restic 0.19.1
// under several pattern sets (dry runs) and checks that a walk applying
// this package's filter keeps exactly the paths restic keeps.
func TestPatternsAgainstRestic(t *testing.T) {
	restic := testtools.Binary(t, "restic")
	root := filepath.Join(t.TempDir(), "src")
	for _, p := range []string{
		"a/b/c.go", "a/x.log", "a/b/y.LOG", "foo/x/bar/f", "foo/bar", "bar/f",
		"target/t", "p/q/target/t", "x/y/a/z/f", "x/y/a/g", "Cache/c", "keep.go",
		"node_modules/m/index.js", "with space/f", "bad\xffname/f", "aa.log", "ba.log", "da.log",
		"deep/1/2/3/4/5/6/f.go",
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := filepath.Join(t.TempDir(), "repo")
	env := append(os.Environ(), "RESTIC_PASSWORD=test", "RESTIC_REPOSITORY="+repo, "RESTIC_CACHE_DIR="+t.TempDir())
	run := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(restic, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("restic %q: %v\n%s", args, err, stderr.String())
		}
		return out
	}
	run("init", "--insecure-no-password=false")

	tests := []struct {
		name     string
		excludes []string
		iexclude []string
	}{
		{"suffix", []string{"*.go"}, nil},
		{"double star", []string{"foo/**/bar"}, nil},
		{"two double stars", []string{"/**/a/**"}, nil},
		{"anchored with negation", []string{root + "/*", "!" + root + "/keep.go", "!" + root + "/a"}, nil},
		{"two components", []string{"a/b"}, nil},
		{"insensitive", nil, []string{"CACHE", "*.log"}},
		{"everything but go", []string{"*", "!*.go"}, nil},
		{"anchored double star", []string{root + "/**/target"}, nil},
		{"trailing double star", []string{"x/**"}, nil},
		{"class", []string{"[ab]*.log", "node_modules"}, nil},
		{"raw bytes", []string{"bad\xff*"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // restic's dry runs take shared locks only
			args := []string{"backup", "--dry-run", "--json", "-vv", "--force", root}
			for _, e := range tt.excludes {
				args = append(args, "--exclude", e)
			}
			for _, e := range tt.iexclude {
				args = append(args, "--iexclude", e)
			}
			want := resticItems(t, run(args...), root)

			f, err := filter.New(filter.Options{Excludes: tt.excludes, InsensitiveExcludes: tt.iexclude})
			if err != nil {
				t.Fatal(err)
			}
			got := walkWith(t, root, f)
			if !slices.Equal(got, want) {
				t.Errorf("kept paths differ from restic's\n got %q\nwant %q", got, want)
			}
		})
	}
}

// resticItems extracts the paths below root that a dry-run backup
// reported, relative to root.
func resticItems(t *testing.T, out []byte, root string) []string {
	t.Helper()
	var items []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var msg struct {
			Type string `json:"message_type"`
			Item string `json:"item"`
		}
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			t.Fatalf("restic output %q: %v", sc.Text(), err)
		}
		item := strings.TrimSuffix(msg.Item, "/")
		if msg.Type != "verbose_status" || !strings.HasPrefix(item, root+"/") {
			continue
		}
		items = append(items, strings.TrimPrefix(item, root+"/"))
	}
	slices.Sort(items)
	return items
}

// walkWith lists root's tree as a walker applying f would keep it: the
// root is a target and never excluded; an excluded directory is not read.
func walkWith(t *testing.T, root string, f *filter.Filter) []string {
	t.Helper()
	var out []string
	var walk func(dir, rel string)
	walk = func(dir, rel string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ents {
			host := dir + "/" + d.Name()
			r := d.Name()
			if rel != "" {
				r = rel + "/" + r
			}
			typ := sources.File
			if d.IsDir() {
				typ = sources.Dir
			}
			if f.Excluded(&sources.Entry{Path: r, HostPath: host, Type: typ}) {
				continue
			}
			out = append(out, r)
			if d.IsDir() {
				walk(host, r)
			}
		}
	}
	walk(root, "")
	// restic's JSON output turns bytes that are not UTF-8 into U+FFFD,
	// one replacement per byte, like encoding/json.
	for i, p := range out {
		b, _ := json.Marshal(p)
		_ = json.Unmarshal(b, &out[i])
	}
	slices.Sort(out)
	return out
}
