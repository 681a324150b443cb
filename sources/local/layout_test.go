//go:build linux

package local_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/filter"
	"github.com/cairn-backup/cairn/sources/local"
)

// makeFiles creates files (and their directories) below base.
func makeFiles(t *testing.T, base string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(base, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLayoutAgainstRestic runs dry-run backups of target sets that
// exercise restic's layout and exclude rules, and compares the paths (and
// which are directories) restic would store with what this source visits.
func TestLayoutAgainstRestic(t *testing.T) {
	base := t.TempDir()
	makeFiles(t, base, "a/x/f", "a/sub/x/k", "a/y", "b/x/g", "c/h", "c/.nobackup", "d/e/f/g", "d/e/z")
	tests := []struct {
		name    string
		cwd     string // relative to base
		targets []string
		filter  filter.Options
		oneFS   bool
	}{
		{"relative and absolute", "a", []string{"x", "../b/x", base + "/c", "../c"}, filter.Options{}, false},
		{"same base name, different roots", "a/sub", []string{"x", "../x", "../../b/x", base + "/a/x"}, filter.Options{}, false},
		{"target inside target", "", []string{base + "/a", base + "/a/x/f", base + "/b/x"}, filter.Options{}, false},
		{"target inside target, reversed", "", []string{base + "/d/e/f", base + "/d"}, filter.Options{}, false},
		{"dot", "", []string{"."}, filter.Options{}, false},
		{"dot dot", "a", []string{".."}, filter.Options{}, false},
		{"nested relative", "", []string{"a/x/f", "d/e"}, filter.Options{}, false},
		{"duplicates", "", []string{base + "/a/x", "a/x", base + "/a/x"}, filter.Options{}, false},
		{"explicit target never excluded", "", []string{"c"}, filter.Options{Excludes: []string{"c"}}, false},
		{"dot entries are excluded", "", []string{"."}, filter.Options{Excludes: []string{"c", "y"}}, false},
		{"marked target keeps its marker", "", []string{"c"}, filter.Options{ExcludeIfPresent: []string{".nobackup"}}, false},
		{"marker in the dot directory", "c", []string{"."}, filter.Options{ExcludeIfPresent: []string{".nobackup"}}, false},
		{"marker below a target inside a target", "", []string{base, base + "/c/h"}, filter.Options{ExcludeIfPresent: []string{".nobackup"}}, false},
		{"one file system", "", []string{"."}, filter.Options{}, true},
	}

	// restic runs first, concurrently; the source needs the working
	// directory changed, which only sequential subtests may do.
	r := newRestic(t)
	wants := make([][]string, len(tests))
	errs := make([]error, len(tests))
	var g errgroup.Group
	g.SetLimit(2)
	for i, tt := range tests {
		g.Go(func() error {
			args := slices.Clone(tt.targets)
			for _, e := range tt.filter.Excludes {
				args = append(args, "--exclude", e)
			}
			for _, e := range tt.filter.ExcludeIfPresent {
				args = append(args, "--exclude-if-present", e)
			}
			if tt.oneFS {
				args = append(args, "--one-file-system")
			}
			wants[i], errs[i] = r.dryRun(filepath.Join(base, tt.cwd), args...)
			return nil
		})
	}
	_ = g.Wait()

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}

			t.Chdir(filepath.Join(base, tt.cwd))
			src, err := local.New(tt.targets, local.Options{})
			if err != nil {
				t.Fatal(err)
			}
			flt, err := filter.New(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			entries, _ := collect(t, src, sources.WalkOptions{Exclude: flt, OneFileSystem: tt.oneFS})
			var got []string
			for p, e := range entries {
				if e.Type == sources.Dir {
					p += "/"
				}
				got = append(got, p)
			}
			slices.Sort(got)
			if !slices.Equal(got, wants[i]) {
				t.Errorf("snapshot tree differs from restic's\n got %q\nwant %q", got, wants[i])
			}
			for j, p := range src.Info().Paths {
				if abs, _ := filepath.Abs(tt.targets[j]); p != abs {
					t.Errorf("Info().Paths[%d] = %q, want %q", j, p, abs)
				}
			}
		})
	}
}

// TestLayoutErrors checks the errors for missing and empty targets.
func TestLayoutErrors(t *testing.T) {
	if _, err := local.New(nil, local.Options{}); err == nil {
		t.Error("New without targets succeeded")
	}
	if _, err := local.New([]string{""}, local.Options{}); err == nil {
		t.Error("New with an empty target succeeded")
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := local.New([]string{missing}, local.Options{}); err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("New with a missing target: %v, want a not-exist error naming it", err)
	}
	dir := t.TempDir()
	makeFiles(t, dir, "f")
	existing, problems := local.Existing([]string{dir + "/f", missing, dir})
	if !slices.Equal(existing, []string{dir + "/f", dir}) || len(problems) != 1 || !errors.Is(problems[0], fs.ErrNotExist) {
		t.Errorf("Existing: %q, %v", existing, problems)
	}
}
