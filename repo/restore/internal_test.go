package restore

import (
	"testing"

	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/index"
	"github.com/cairn-backup/cairn/repo/pack"
)

// The selection rules of restic's restore: an include list selects what it
// matches and descends where a match is still possible below (absolute
// patterns only along their own prefix, up to "**"); an exclude list
// selects everything it does not match.
func TestSelector(t *testing.T) {
	for _, c := range []struct {
		opts            Options
		path            string
		isDir           bool
		selected, child bool
	}{
		{Options{}, "/a", true, true, true},
		{Options{}, "/a", false, true, false},
		{Options{Include: []string{"/a/b"}}, "/a", true, false, true},
		{Options{Include: []string{"/a/b"}}, "/x", true, false, false},
		{Options{Include: []string{"/a/b"}}, "/a/b", true, true, true},
		{Options{Include: []string{"/a/b"}}, "/a/b/c", false, true, false},
		{Options{Include: []string{"/a/*/c"}}, "/a/zz", true, false, true},
		{Options{Include: []string{"/a/*/c"}}, "/b/zz", true, false, false},
		{Options{Include: []string{"/a/**/c"}}, "/a/x/y", true, false, true},
		{Options{Include: []string{"/a/**/c"}}, "/a/x/y/c", false, true, false},
		{Options{Include: []string{"/a/**/c"}}, "/b/x", true, false, false},
		{Options{Include: []string{"c"}}, "/x/y", true, false, true},
		{Options{Include: []string{"c"}}, "/x/c", false, true, false},
		{Options{Include: []string{"*.log", "!/keep/x.log"}}, "/keep/x.log", false, false, false},
		{Options{Include: []string{"*.log", "!/keep/x.log"}}, "/keep/y.log", false, true, false},
		{Options{IInclude: []string{"/DOCS"}}, "/docs/a", false, true, false},
		{Options{IInclude: []string{"/DOCS"}}, "/Docs", true, true, true},
		{Options{Exclude: []string{"*.tmp"}}, "/a/b.tmp", false, false, false},
		{Options{Exclude: []string{"*.tmp"}}, "/a", true, true, true},
		{Options{Exclude: []string{"/a"}}, "/a", true, false, false},
		{Options{Exclude: []string{"/a/*", "!/a/keep"}}, "/a/keep", false, true, false},
		{Options{Exclude: []string{"/a/*", "!/a/keep"}}, "/a/drop", false, false, false},
		{Options{IExclude: []string{"*.TMP"}}, "/a/b.tmp", false, false, false},
	} {
		s, err := newSelector(&c.opts)
		if err != nil {
			t.Fatal(err)
		}
		sel, child := s.selects(c.path, c.isDir)
		if sel != c.selected || child != c.child {
			t.Errorf("%+v %q dir=%v: selected %v child %v, want %v %v", c.opts, c.path, c.isDir, sel, child, c.selected, c.child)
		}
	}
}

func TestXattrSelector(t *testing.T) {
	for _, c := range []struct {
		opts Options
		name string
		want bool
	}{
		{Options{}, "security.selinux", true},
		{Options{ExcludeXattr: []string{"security.*"}}, "security.selinux", false},
		{Options{ExcludeXattr: []string{"security.*"}}, "user.a", true},
		{Options{IncludeXattr: []string{"user.*"}}, "user.a", true},
		{Options{IncludeXattr: []string{"user.*"}}, "trusted.a", false},
	} {
		x, err := newXattrSelector(&c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := x.selects(c.name); got != c.want {
			t.Errorf("%+v %q: %v, want %v", c.opts, c.name, got, c.want)
		}
	}
}

func TestZeroPrefixSuffix(t *testing.T) {
	for _, c := range []struct {
		data         []byte
		lead, suffix int
	}{
		{nil, 0, 0},
		{[]byte{1}, 0, 0},
		{make([]byte, 10000), 10000, 10000},
		{append(make([]byte, 5000), 1), 5000, 0},
		{append([]byte{1}, make([]byte, 9000)...), 0, 9000},
		{append(append(make([]byte, 4097), 7), make([]byte, 4095)...), 4097, 4095},
	} {
		if got := zeroPrefix(c.data); got != c.lead {
			t.Errorf("zeroPrefix(%d bytes) = %d, want %d", len(c.data), got, c.lead)
		}
		if got := zeroSuffix(c.data); got != c.suffix {
			t.Errorf("zeroSuffix(%d bytes) = %d, want %d", len(c.data), got, c.suffix)
		}
	}
}

// Needed blobs of a pack become ranges: split at large gaps, at the range
// size limit and where index entries overlap; never empty, always sorted.
func TestAppendJobs(t *testing.T) {
	mk := func(off, n uint32) *blobEntry {
		return &blobEntry{loc: index.Location{Blob: pack.Blob{Handle: blob.Handle{ID: blob.Hash([]byte{byte(off), byte(off >> 8), byte(off >> 16)})}, Offset: off, Length: n}}}
	}
	blobs := []*blobEntry{
		mk(300, 100),              // after 0..100: gap 200, same range
		mk(0, 100),                //
		mk(2<<20, 100),            // gap > 1 MiB: new range
		mk(2<<20+50, 100),         // overlaps the previous: new range
		mk(3<<20, 6<<20),          // ends 9 MiB after 2 MiB+50: new range
		mk(9<<20, maxRangeSize+1), // larger than a range on its own
	}
	jobs := appendJobs(nil, blob.ID{1}, blobs)
	var got [][2]int64
	for _, j := range jobs {
		got = append(got, [2]int64{j.start, j.end})
		for i := 1; i < len(j.blobs); i++ {
			if j.blobs[i].loc.Offset < j.blobs[i-1].loc.Offset+j.blobs[i-1].loc.Length {
				t.Errorf("job %v: blobs overlap", got[len(got)-1])
			}
		}
	}
	want := [][2]int64{{0, 400}, {2 << 20, 2<<20 + 100}, {2<<20 + 50, 3<<20 + 6<<20}, {9 << 20, 9<<20 + maxRangeSize + 1}}
	if len(got) != len(want) {
		t.Fatalf("ranges %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("range %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "...": true, ".hidden": true, "a b": true, "\xff": true,
		"": false, ".": false, "..": false, "a/b": false, "/": false, "a\x00b": false,
	} {
		if validName(name) != want {
			t.Errorf("validName(%q) = %v", name, !want)
		}
	}
}
