package testtree

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/internal/testtools"
)

func TestBuildMatchesDisk(t *testing.T) {
	dir := t.TempDir()
	m := Build(t, dir, Options{SmallFiles: 50})
	disk, err := scan(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(disk) != len(m.Files) {
		t.Errorf("manifest lists %d entries, the disk holds %d", len(m.Files), len(disk))
	}
	for i := range m.Files {
		f := &m.Files[i]
		e, ok := disk[f.Path]
		if !ok {
			t.Errorf("%q: in the manifest, not on disk", f.Path)
			continue
		}
		if e.mode != f.Mode {
			t.Errorf("%q: mode %v on disk, manifest %v", f.Path, e.mode, f.Mode)
		}
		if f.IsRegular() && !e.atime.Equal(f.AccessTime) {
			t.Errorf("%q: atime %v on disk, manifest %v", f.Path, e.atime, f.AccessTime)
		}
		if e.ino != f.Inode || e.nlink != f.Links || e.dev != f.DeviceID {
			t.Errorf("%q: inode/links/dev %d/%d/%d on disk, manifest %d/%d/%d", f.Path, e.ino, e.nlink, e.dev, f.Inode, f.Links, f.DeviceID)
		}
		if f.IsRegular() {
			sum, err := hashFile(e.host)
			if err != nil {
				t.Fatal(err)
			}
			if sum != f.SHA256 {
				t.Errorf("%q: content hash differs from the manifest", f.Path)
			}
		}
		if m.Features.Xattrs && !xattrsEqual(e.xattrs, f.Xattrs) {
			t.Errorf("%q: xattrs %q on disk, manifest %q", f.Path, e.xattrs, f.Xattrs)
		}
	}
	if !slices.IsSortedFunc(m.Files, func(a, b File) int { return ComparePaths(a.Path, b.Path) }) {
		t.Error("manifest not in walk order")
	}
	if m.Files[0].Path != "" || !m.Files[0].IsDir() {
		t.Errorf("first entry %q, want the root directory", m.Files[0].Path)
	}
}

func xattrsEqual(a, b []Xattr) bool {
	return slices.EqualFunc(a, b, func(x, y Xattr) bool { return x.Name == y.Name && string(x.Value) == string(y.Value) })
}

// TestBuildContent checks the awkward things the fixture promises.
func TestBuildContent(t *testing.T) {
	m := Build(t, t.TempDir(), Options{})
	get := func(p string) *File {
		t.Helper()
		f, ok := m.Lookup(p)
		if !ok {
			t.Fatalf("no entry %q", p)
		}
		return f
	}
	if f := get("files/random.bin"); f.Size != RandomSize {
		t.Errorf("random.bin size %d", f.Size)
	}
	if f := get("files/sparse.img"); !f.Sparse || f.Size != SparseSize {
		t.Errorf("sparse.img: sparse %v size %d", f.Sparse, f.Size)
	}
	if !m.Features.Sparse {
		t.Error("ext4 and tmpfs keep holes; the sparse file has none")
	}
	deep := 0
	for i := range m.Files {
		if strings.HasPrefix(m.Files[i].Path, "deep/") && m.Files[i].IsDir() {
			deep++
		}
	}
	if deep < 40 {
		t.Errorf("deep/ has %d levels, want at least 40", deep)
	}
	for _, name := range OddNames {
		get("names/" + name)
	}
	if f := get("links/non-utf8"); f.LinkTarget != "target-\xff\xfe" || f.Mode.Type() != fs.ModeSymlink {
		t.Errorf("links/non-utf8: %q %v", f.LinkTarget, f.Mode)
	}
	groups := m.HardLinkGroups()
	wantGroups := [][]string{
		{"files/pair-2", "hardlinks/pair-1"},
		{"hardlinks/a", "hardlinks/b", "hardlinks/sub/c"},
		{"hardlinks/symlink", "hardlinks/symlink-2"},
		{"xattrs/hardlinked", "xattrs/hardlinked-2"},
	}
	slices.SortFunc(groups, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	if !slices.EqualFunc(groups, wantGroups, slices.Equal) {
		t.Errorf("hard-link groups %q, want %q", groups, wantGroups)
	}
	for _, g := range groups {
		first := get(g[0])
		for _, p := range g[1:] {
			if f := get(p); f.HardLink != g[0] || f.Inode != first.Inode || f.Links != uint64(len(g)) {
				t.Errorf("%s: hardlink %q inode %d links %d; first %s inode %d", p, f.HardLink, f.Inode, f.Links, g[0], first.Inode)
			}
		}
	}
	if f := get("times/pre-1970"); !f.ModTime.Equal(TimePre1970) {
		t.Errorf("pre-1970 mtime %v", f.ModTime)
	}
	if f := get("times/far-future"); !f.ModTime.Equal(TimeFarFuture) {
		t.Errorf("far-future mtime %v", f.ModTime)
	}
	if m.Features.Xattrs {
		f := get("xattrs/file")
		var empty *Xattr
		for i := range f.Xattrs {
			if f.Xattrs[i].Name == "user.empty" {
				empty = &f.Xattrs[i]
			}
		}
		if empty == nil || empty.Value == nil || len(empty.Value) != 0 {
			t.Errorf("user.empty: %#v, want a non-nil empty value", empty)
		}
	}
	if m.Privileged {
		if !m.Features.Devices || !m.Features.Ownership {
			t.Errorf("root could not make devices (%v) or owners (%v)", m.Features.Devices, m.Features.Ownership)
		}
		if f := get("special/chardev-big"); f.Rdev != unix.Mkdev(511, 70000) {
			t.Errorf("chardev-big rdev %#x", f.Rdev)
		}
		if f := get("owners/no-passwd"); f.UID != 54321 || f.User != "" || f.Group != "" {
			t.Errorf("owners/no-passwd: %d %q %q", f.UID, f.User, f.Group)
		}
		if f := get("modes/all-special"); f.Mode != 0o777|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky {
			t.Errorf("all-special mode %v", f.Mode)
		}
	}
}

func TestBuildDeterministic(t *testing.T) {
	a := Build(t, t.TempDir(), Options{SmallFiles: 20, Seed: 7})
	b := Build(t, t.TempDir(), Options{SmallFiles: 20, Seed: 7})
	c := Build(t, t.TempDir(), Options{SmallFiles: 20, Seed: 8})
	if len(a.Files) != len(b.Files) {
		t.Fatalf("%d vs %d entries", len(a.Files), len(b.Files))
	}
	for i := range a.Files {
		fa, fb := a.Files[i], b.Files[i]
		if fa.Path != fb.Path || fa.Mode != fb.Mode || fa.SHA256 != fb.SHA256 || !fa.ModTime.Equal(fb.ModTime) ||
			!fa.AccessTime.Equal(fb.AccessTime) || fa.UID != fb.UID || fa.Rdev != fb.Rdev || !xattrsEqual(fa.Xattrs, fb.Xattrs) {
			t.Errorf("entry %d differs between builds: %+v vs %+v", i, fa, fb)
		}
		if !strings.HasPrefix(fa.LinkTarget, "/") && fa.LinkTarget != fb.LinkTarget {
			t.Errorf("%q: link target %q vs %q", fa.Path, fa.LinkTarget, fb.LinkTarget)
		}
	}
	ra, _ := a.Lookup("files/random.bin")
	rc, _ := c.Lookup("files/random.bin")
	if ra.SHA256 == rc.SHA256 {
		t.Error("different seeds made the same random.bin")
	}
}

func TestDiffIdentical(t *testing.T) {
	m := Build(t, t.TempDir(), Options{SmallFiles: 10})
	diffs, err := Diff(m.Root, m.Root, CompareOptions{Sparse: true, Atime: true, Sockets: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("a tree differs from itself: %q", diffs)
	}
}

// TestDiffFindsChanges copies a fixture with cp -a, changes one thing at a
// time and expects Diff to name exactly that path.
func TestDiffFindsChanges(t *testing.T) {
	m := Build(t, t.TempDir(), Options{SmallFiles: 10})
	xattrs := m.Features.Xattrs
	tests := []struct {
		name   string
		path   string
		change func(p string) error
		opts   CompareOptions
		skip   bool
	}{
		{"content", "files/small.txt", func(p string) error {
			fi, _ := os.Lstat(p)
			if err := os.WriteFile(p, []byte("a small text fil!\n"), 0); err != nil {
				return err
			}
			return os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}, CompareOptions{}, false},
		{"mode", "modes/setuid", func(p string) error { return os.Chmod(p, 0o755) }, CompareOptions{}, false},
		{"mtime nanosecond", "times/nanoseconds", func(p string) error {
			return os.Chtimes(p, TimeNano, TimeNano.Add(1))
		}, CompareOptions{}, false},
		{"atime when asked", "files/tiny", func(p string) error {
			fi, _ := os.Lstat(p)
			return os.Chtimes(p, time.Unix(5, 0), fi.ModTime())
		}, CompareOptions{Atime: true}, false},
		{"owner", "owners/nobody", func(p string) error { return os.Lchown(p, 0, 0) }, CompareOptions{}, !m.Features.Ownership},
		{"symlink target", "links/relative", func(p string) error {
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink("../files/tinY", p)
		}, CompareOptions{IgnoreRoot: true}, false},
		{"xattr value", "xattrs/file", func(p string) error {
			return unix.Lsetxattr(p, "user.text", []byte("hellO"), 0)
		}, CompareOptions{}, !xattrs},
		{"missing", "dirs/empty", func(p string) error { return os.Remove(p) }, CompareOptions{IgnoreRoot: true}, false},
		{"extra", "dirs/extra", func(p string) error { return os.WriteFile(p, nil, 0o644) }, CompareOptions{IgnoreRoot: true}, false},
		{"hard link broken", "hardlinks/b", func(p string) error {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, _ := os.Lstat(p)
			if err := os.Remove(p); err != nil {
				return err
			}
			if err := os.WriteFile(p, data, 0o640); err != nil {
				return err
			}
			return os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}, CompareOptions{IgnoreRoot: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				testtools.Unavailable(t, "the fixture has no %s here (needs root or file-system support)", tt.name)
			}
			got := filepath.Join(t.TempDir(), "copy")
			MakeRemovable(t, got)
			if out, err := exec.Command("cp", "-a", m.Root, got).CombinedOutput(); err != nil {
				t.Fatalf("cp -a: %v\n%s", err, out)
			}
			// cp reads the originals, which moves their atime: check the
			// copy before the change without atimes.
			beforeOpts := tt.opts
			beforeOpts.Atime = false
			before, err := Diff(m.Root, got, beforeOpts)
			if err != nil {
				t.Fatal(err)
			}
			if len(before) > 0 {
				t.Fatalf("cp -a copy differs before the change: %q", before)
			}
			parent := filepath.Dir(filepath.Join(got, tt.path))
			pfi, _ := os.Lstat(parent)
			if err := tt.change(filepath.Join(got, tt.path)); err != nil {
				t.Fatal(err)
			}
			// Keep the parent's mtime so only the intended change shows.
			_ = os.Chtimes(parent, pfi.ModTime(), pfi.ModTime())
			diffs, err := Diff(m.Root, got, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) == 0 {
				t.Fatalf("change to %s not reported", tt.path)
			}
			found := false
			for _, d := range diffs {
				switch {
				case strings.HasPrefix(d, `"`+tt.path+`"`):
					found = true
				case tt.opts.Atime && strings.Contains(d, ": atime "):
					// cp moved the originals' atimes (see above).
				case !strings.Contains(d, `"hardlinks/`):
					t.Errorf("unrelated difference reported: %s", d)
				}
			}
			if !found {
				t.Errorf("change to %s not reported: %q", tt.path, diffs)
			}
		})
	}
}

func TestUnreadable(t *testing.T) {
	m := Build(t, t.TempDir(), Options{SmallFiles: 5, Unreadable: true})
	for _, p := range []string{"unreadable/dir", "unreadable/dir/inside", "unreadable/file", "unreadable/noexec/x"} {
		f, ok := m.Lookup(p)
		if !ok || !f.Unreadable {
			t.Errorf("%s: present %v, marked unreadable %v", p, ok, ok && f.Unreadable)
		}
	}
	fi, err := os.Lstat(filepath.Join(m.Root, "unreadable/dir"))
	if err != nil || fi.Mode().Perm() != 0 {
		t.Errorf("unreadable/dir: %v %v", fi, err)
	}
	// The cleanup registered by Build must make t.TempDir removable; the
	// test framework reports a failure otherwise.

	only := Build(t, t.TempDir(), Options{UnreadableOnly: true})
	for i := range only.Files {
		if p := only.Files[i].Path; p != "" && p != "unreadable" && !strings.HasPrefix(p, "unreadable/") {
			t.Errorf("UnreadableOnly fixture holds %q", p)
		}
	}
	if len(only.Files) != 8 || !only.Features.Unreadable {
		t.Errorf("UnreadableOnly: %d entries, features %+v", len(only.Files), only.Features)
	}
}

func TestComparePaths(t *testing.T) {
	paths := []string{"a-c", "a/b", "", "a", "a/b/c", "a\xff", "B", "a b"}
	slices.SortFunc(paths, ComparePaths)
	want := []string{"", "B", "a", "a/b", "a/b/c", "a b", "a-c", "a\xff"}
	if !slices.Equal(paths, want) {
		t.Errorf("got %q, want %q", paths, want)
	}
}
