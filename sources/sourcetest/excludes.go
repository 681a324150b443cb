package sourcetest

import (
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/filter"
)

// checkKept walks with the filter and compares what was visited below the
// fixture with keep's verdict on every fixture entry. An entry below one
// that is left out must be left out too, whatever keep says.
func (s *suite) checkKept(t *testing.T, opts filter.Options, keep func(f *fixture, e *testtree.File) bool) *recorder {
	t.Helper()
	f := s.open(t, s.h.Fixture)
	flt, err := filter.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder(f.info.Streamed)
	r.mustWalk(t, f, sources.WalkOptions{Exclude: flt})
	if _, ok := r.entries[f.root]; !ok {
		t.Fatal("the target itself was not visited; excludes never apply to targets")
	}
	kept := map[string]bool{"": true}
	for i := range f.m.Files {
		me := &f.m.Files[i]
		if me.Path == "" || s.ignored(f, me) != "" {
			continue
		}
		parent := path.Dir(me.Path)
		if parent == "." {
			parent = ""
		}
		want := kept[parent] && keep(f, me)
		kept[me.Path] = want
		_, got := r.entries[f.snap(me.Path)]
		switch {
		case want && !got && !optionalType(f, me):
			t.Errorf("%q left out, want it kept", me.Path)
		case !want && got:
			t.Errorf("%q kept, want it left out", me.Path)
		}
	}
	return r
}

// hostPath is where the fixture entry rel lives for the filter: the
// target's host path (the root entry's) joined with rel.
func hostPath(f *fixture, rel string) string {
	root := f.info.Paths[0]
	if rel == "" {
		return root
	}
	return strings.TrimSuffix(root, "/") + "/" + rel
}

func (s *suite) testExcludePattern(t *testing.T) {
	opts := filter.Options{
		Excludes:            []string{"*.log", "skipdir", "*.txt", "!keep.txt", "bad\xff*"},
		InsensitiveExcludes: []string{"*.LOG", "NESTED"},
	}
	flt, err := filter.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.checkKept(t, opts, func(f *fixture, e *testtree.File) bool {
		return !flt.ExcludedByName(hostPath(f, e.Path))
	})
}

func (s *suite) testExcludeIfPresent(t *testing.T) {
	opts := filter.Options{ExcludeIfPresent: []string{".nobackup"}, ExcludeCaches: true}
	var f *fixture
	r := s.checkKept(t, opts, func(fx *fixture, e *testtree.File) bool {
		f = fx
		if f.info.Streamed {
			return true // streams cannot look into a directory before its entries
		}
		// restic keeps a marked directory and its marker, nothing else;
		// a CACHEDIR.TAG with the wrong signature marks nothing.
		switch path.Dir(e.Path) {
		case "excl/marked":
			return path.Base(e.Path) == ".nobackup"
		case "excl/cache":
			return path.Base(e.Path) == "CACHEDIR.TAG"
		}
		return true
	})
	if f != nil && !f.info.Streamed {
		if _, ok := r.entries[f.snap("excl/marked")]; !ok {
			t.Log("hint: restic keeps a directory whose contents a marker excludes, and the marker " +
				"itself; call the Excluder's ExcludedContents(dir, peek) when it has that method " +
				"(sources/filter.Filter does), and ExcludedByContents only when it has not")
		}
	}
}

func (s *suite) testExcludeLargerThan(t *testing.T) {
	for _, limit := range []struct {
		spec string
		size int64
	}{{"1M", 1 << 20}, {"4000", 4000}} {
		t.Run(limit.spec, func(t *testing.T) {
			s.checkKept(t, filter.Options{ExcludeLargerThan: limit.spec}, func(f *fixture, e *testtree.File) bool {
				// restic applies the limit to everything but directories,
				// a symlink counting with the length of its target.
				switch {
				case e.IsRegular():
					return e.Size <= limit.size
				case e.Mode&fs.ModeSymlink != 0:
					return int64(len(e.LinkTarget)) <= limit.size
				}
				return true
			})
		})
	}
}
