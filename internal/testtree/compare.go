package testtree

import (
	"bytes"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

// CompareOptions say which differences Diff reports. The zero value
// compares everything a restore can reproduce: type, permissions and
// special bits, content, size, modification times to the nanosecond,
// owners, symlink targets, device numbers, user.* xattrs and hard-link
// groups. Change times are never compared (no restore can set them);
// sockets are left out unless Sockets is set, because restic stores none.
type CompareOptions struct {
	// IgnoreOwnership skips uid and gid (a restore without privileges).
	IgnoreOwnership bool
	// IgnoreXattrs skips extended attributes.
	IgnoreXattrs bool
	// AllXattrs compares every namespace instead of only user.*.
	AllXattrs bool
	// Atime also compares the access times of regular files (restic stores
	// mtime as atime unless --with-atime). Directories and symlinks are
	// left out: listing a directory or reading a link moves its atime, and
	// nothing can prevent the latter.
	Atime bool
	// IgnoreRoot skips the metadata of the two root directories themselves
	// (their content is still compared).
	IgnoreRoot bool
	// IgnoreHardLinks skips the hard-link group check.
	IgnoreHardLinks bool
	// Sparse requires every file that has holes in want to have holes in
	// got (restore --sparse).
	Sparse bool
	// Sockets compares sockets too.
	Sockets bool
	// Ignore leaves out paths (relative, slash-separated, "" is the root)
	// and everything below them.
	Ignore func(path string) bool
}

// Compare reports every difference between the trees at want and got as a
// test error (the first 100 in full, then a count).
func Compare(t testing.TB, want, got string, opts CompareOptions) {
	t.Helper()
	diffs, err := Diff(want, got, opts)
	if err != nil {
		t.Fatalf("testtree: compare %s with %s: %v", want, got, err)
	}
	for i, d := range diffs {
		if i == 100 {
			t.Errorf("testtree: … and %d more differences", len(diffs)-i)
			break
		}
		t.Errorf("testtree: %s", d)
	}
}

// Diff walks both trees and returns one line per difference, sorted by
// path; an error means a tree could not be read at all.
func Diff(want, got string, opts CompareOptions) ([]string, error) {
	w, err := scan(want, opts.AllXattrs)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", want, err)
	}
	g, err := scan(got, opts.AllXattrs)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", got, err)
	}
	ignored := func(p string) bool {
		if opts.Ignore == nil {
			return false
		}
		for {
			if opts.Ignore(p) {
				return true
			}
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				return p != "" && opts.Ignore("")
			}
			p = p[:i]
		}
	}
	skip := func(e *entry) bool {
		return ignored(e.path) || (!opts.Sockets && e.mode&fs.ModeSocket != 0)
	}

	var diffs []diff
	add := func(p, format string, args ...any) {
		diffs = append(diffs, diff{p, fmt.Sprintf("%q: ", p) + fmt.Sprintf(format, args...)})
	}
	for p, we := range w {
		if skip(we) {
			continue
		}
		ge, ok := g[p]
		if !ok {
			add(p, "missing (want %v)", we.mode.Type())
			continue
		}
		compareEntry(we, ge, opts, func(format string, args ...any) { add(p, format, args...) })
	}
	for p, ge := range g {
		if _, ok := w[p]; !ok && !skip(ge) {
			add(p, "unexpected %v", ge.mode.Type())
		}
	}
	if !opts.IgnoreHardLinks {
		for _, d := range compareLinkGroups(w, g, skip) {
			add(d[0], "%s", d[1])
		}
	}
	slices.SortFunc(diffs, func(a, b diff) int {
		if c := comparePaths(a.path, b.path); c != 0 {
			return c
		}
		return strings.Compare(a.msg, b.msg)
	})
	out := make([]string, len(diffs))
	for i, d := range diffs {
		out[i] = d.msg
	}
	return out, nil
}

type diff struct{ path, msg string }

// compareEntry reports the differences between two entries at one path.
func compareEntry(w, g *entry, opts CompareOptions, add func(string, ...any)) {
	if w.mode.Type() != g.mode.Type() {
		add("type %v, want %v", g.mode.Type(), w.mode.Type())
		return
	}
	if w.path == "" && opts.IgnoreRoot {
		return
	}
	const bits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	if w.mode&fs.ModeSymlink == 0 && w.mode&bits != g.mode&bits {
		add("mode %v, want %v", g.mode, w.mode)
	}
	if !w.mtime.Equal(g.mtime) {
		add("mtime %v, want %v", g.mtime.UTC(), w.mtime.UTC())
	}
	if opts.Atime && w.mode.IsRegular() && !w.atime.Equal(g.atime) {
		add("atime %v, want %v", g.atime.UTC(), w.atime.UTC())
	}
	if !opts.IgnoreOwnership && (w.uid != g.uid || w.gid != g.gid) {
		add("owner %d:%d, want %d:%d", g.uid, g.gid, w.uid, w.gid)
	}
	if w.target != g.target {
		add("symlink target %q, want %q", g.target, w.target)
	}
	if w.rdev != g.rdev {
		add("device %#x, want %#x", g.rdev, w.rdev)
	}
	if !opts.IgnoreXattrs {
		compareXattrs(w.xattrs, g.xattrs, add)
	}
	if !w.mode.IsRegular() {
		return
	}
	if w.size != g.size {
		add("size %d, want %d", g.size, w.size)
		return
	}
	wh, err := hashFile(w.host)
	if err != nil {
		add("cannot read original: %v", err)
		return
	}
	gh, err := hashFile(g.host)
	if err != nil {
		add("cannot read: %v", err)
		return
	}
	if wh != gh {
		add("content differs (sha256 %x, want %x)", gh[:8], wh[:8])
	}
	if opts.Sparse && w.blocks*512 < w.size && g.blocks*512 >= g.size {
		add("not sparse: %d blocks for %d bytes", g.blocks, g.size)
	}
}

// compareXattrs compares attributes as sets: a restore may set them in a
// different order than listxattr reported on the original.
func compareXattrs(w, g []Xattr, add func(string, ...any)) {
	for _, x := range w {
		i := slices.IndexFunc(g, func(y Xattr) bool { return y.Name == x.Name })
		switch {
		case i < 0:
			add("xattr %q missing", x.Name)
		case !bytes.Equal(g[i].Value, x.Value):
			add("xattr %q = %q, want %q", x.Name, g[i].Value, x.Value)
		}
	}
	for _, y := range g {
		if !slices.ContainsFunc(w, func(x Xattr) bool { return x.Name == y.Name }) {
			add("unexpected xattr %q", y.Name)
		}
	}
}

// compareLinkGroups checks that the same sets of names share an inode in
// both trees. It returns (path, message) pairs.
func compareLinkGroups(w, g map[string]*entry, skip func(*entry) bool) [][2]string {
	groups := func(m map[string]*entry) map[string]string {
		byInode := map[[2]uint64][]string{}
		for p, e := range m {
			if e.mode.IsDir() || e.nlink < 2 || skip(e) {
				continue
			}
			k := [2]uint64{e.dev, e.ino}
			byInode[k] = append(byInode[k], p)
		}
		// Each path maps to the sorted list of its group, as one string.
		out := map[string]string{}
		for _, names := range byInode {
			if len(names) < 2 {
				continue
			}
			slices.SortFunc(names, comparePaths)
			key := fmt.Sprintf("%q", names)
			for _, p := range names {
				out[p] = key
			}
		}
		return out
	}
	wg, gg := groups(w), groups(g)
	var out [][2]string
	for p, key := range wg {
		if gg[p] != key {
			out = append(out, [2]string{p, fmt.Sprintf("hard links %s, want %s", orNone(gg[p]), key)})
		}
	}
	for p, key := range gg {
		if _, ok := wg[p]; !ok {
			out = append(out, [2]string{p, fmt.Sprintf("hard links %s, want none", key)})
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
