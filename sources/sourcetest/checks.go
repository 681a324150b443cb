package sourcetest

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/sources"
)

func (s *suite) testInfo(t *testing.T) {
	f := s.open(t, s.h.Fixture)
	if len(f.info.Paths) != 1 {
		t.Fatalf("Info().Paths = %q, want the one target", f.info.Paths)
	}
	if !strings.HasPrefix(f.info.Paths[0], "/") {
		t.Errorf("Info().Paths[0] = %q, want an absolute path", f.info.Paths[0])
	}
	if f.info.Hostname == "" {
		t.Error("Info().Hostname is empty")
	}
	if f.root == "" || strings.HasPrefix(f.root, "/") {
		t.Errorf("fixture root in the snapshot is %q, want a relative, non-empty path", f.root)
	}
	// Info must hand out copies: a caller changing them changes nothing.
	f.info.Paths[0] = "changed"
	if f.src.Info().Paths[0] == "changed" {
		t.Error("Info().Paths shares its slice with the source")
	}
}

// ancestors returns the snapshot paths above root, outermost first.
func ancestors(root string) []string {
	var out []string
	for p := path.Dir(root); p != "." && p != "/" && p != ""; p = path.Dir(p) {
		out = append(out, p)
	}
	slices.Reverse(out)
	return out
}

func (s *suite) testEntries(t *testing.T) {
	f := s.open(t, s.h.Fixture)
	r := newRecorder(f.info.Streamed)
	r.mustWalk(t, f, sources.WalkOptions{})

	for _, a := range ancestors(f.root) {
		if e, ok := r.entries[a]; !ok || e.Type != sources.Dir {
			t.Errorf("directory %q above the target not visited as a directory", a)
		}
	}
	above := map[string]bool{}
	for _, a := range ancestors(f.root) {
		above[a] = true
	}
	for p, e := range r.entries {
		rel, ok := f.rel(p)
		if !ok {
			if !above[p] {
				t.Errorf("visited %q outside the target", p)
			}
			continue
		}
		me, ok := f.m.Lookup(rel)
		switch {
		case !ok:
			t.Errorf("visited %q (%v), which the fixture does not hold", p, e.Type)
		case s.ignored(f, me) != "":
			t.Errorf("visited %q although the harness says it cannot be represented", p)
		case e.Type != typeOf(me.Mode):
			t.Errorf("%q: type %v, want %v", p, e.Type, typeOf(me.Mode))
		}
	}
	for i := range f.m.Files {
		me := &f.m.Files[i]
		if why := s.ignored(f, me); why != "" {
			t.Logf("not expected: %q (%s)", me.Path, why)
			continue
		}
		if _, ok := r.entries[f.snap(me.Path)]; !ok && !optionalType(f, me) {
			t.Errorf("fixture entry %q (%v) not visited", me.Path, me.Mode.Type())
		}
	}
}

func (s *suite) testOrder(t *testing.T) {
	f := s.open(t, s.h.Fixture)
	r := newRecorder(f.info.Streamed)
	r.mustWalk(t, f, sources.WalkOptions{})
	checkOrder(t, r, f.info.Streamed)
}

// checkOrder checks the Visitor contract on a recorded walk: parents
// before children, LeaveDir("") last and once, and for non-streamed
// sources sorted siblings and exactly one LeaveDir per directory, after
// everything below it.
func checkOrder(t *testing.T, r *recorder, streamed bool) {
	t.Helper()
	visited := map[string]bool{}
	left := map[string]int{}
	lastChild := map[string]string{} // directory -> last child name visited
	for i, ev := range r.events {
		if ev.leave {
			left[ev.path]++
			if ev.path == "" {
				if i != len(r.events)-1 {
					t.Errorf("LeaveDir(\"\") at event %d of %d, want last", i, len(r.events))
				}
				continue
			}
			if e := r.entries[ev.path]; e == nil || e.Type != sources.Dir {
				t.Errorf("LeaveDir(%q) for something never visited as a directory", ev.path)
			}
			continue
		}
		parent := path.Dir(ev.path)
		if parent == "." {
			parent = ""
		}
		if parent != "" && !visited[parent] {
			t.Errorf("%q visited before its directory", ev.path)
		}
		if parent != "" && left[parent] > 0 {
			t.Errorf("%q visited after LeaveDir(%q)", ev.path, parent)
		}
		// Every directory that is not an ancestor of this entry must have
		// been left already (non-streamed): checked via LeaveDir counts
		// below; here, siblings.
		name := path.Base(ev.path)
		if prev, ok := lastChild[parent]; ok && !streamed && prev >= name {
			t.Errorf("in %q, %q visited after %q: children must come sorted by raw bytes", parent, name, prev)
		}
		lastChild[parent] = name
		visited[ev.path] = true
	}
	if left[""] != 1 {
		t.Errorf("LeaveDir(\"\") called %d times, want 1", left[""])
	}
	if streamed {
		return
	}
	for p, e := range r.entries {
		if e.Type == sources.Dir && left[p] != 1 {
			t.Errorf("LeaveDir(%q) called %d times, want 1", p, left[p])
		}
	}
	// LeaveDir(d) must come after every visit below d: walk the events
	// keeping the stack of open directories.
	var stack []string
	for _, ev := range r.events {
		if ev.leave {
			if ev.path == "" {
				continue
			}
			if len(stack) == 0 || stack[len(stack)-1] != ev.path {
				t.Errorf("LeaveDir(%q) while %q is the innermost open directory", ev.path, strings.Join(stack, " > "))
				continue
			}
			stack = stack[:len(stack)-1]
			continue
		}
		for len(stack) > 0 && !strings.HasPrefix(ev.path, stack[len(stack)-1]+"/") {
			t.Errorf("%q visited before LeaveDir(%q)", ev.path, stack[len(stack)-1])
			stack = stack[:len(stack)-1]
		}
		if e := r.entries[ev.path]; e != nil && e.Type == sources.Dir {
			stack = append(stack, ev.path)
		}
	}
}

func (s *suite) testMetadata(t *testing.T) {
	f := s.open(t, s.h.Fixture)
	r := newRecorder(f.info.Streamed)
	r.mustWalk(t, f, sources.WalkOptions{})
	has := f.info.Has
	for i := range f.m.Files {
		me := &f.m.Files[i]
		if s.ignored(f, me) != "" {
			continue
		}
		e, ok := r.entries[f.snap(me.Path)]
		if !ok {
			continue // testEntries reports it
		}
		if s.h.Inexact != nil {
			if why := s.h.Inexact(me); why != "" {
				t.Logf("metadata not compared: %q (%s)", me.Path, why)
				continue
			}
		}
		errorf := func(format string, args ...any) {
			t.Helper()
			t.Errorf("%q: %s", me.Path, fmt.Sprintf(format, args...))
		}
		checkEntry(errorf, f, me, e, has)
	}
}

// checkEntry compares one entry with the fixture, within what the source
// says it fills.
func checkEntry(errorf func(string, ...any), f *fixture, me *testtree.File, e *sources.Entry, has sources.Metadata) {
	if e.Mode != me.Mode {
		errorf("mode %v, want %v", e.Mode, me.Mode)
	}
	if me.IsRegular() && e.Size != me.Size {
		errorf("size %d, want %d", e.Size, me.Size)
	}
	sameTime := func(what string, got, want time.Time) {
		if has&sources.HasSubsecondTimes == 0 {
			want = want.Truncate(time.Second) // floors, also before 1970
		}
		if !got.Equal(want) {
			errorf("%s %v, want %v", what, got.UTC(), want.UTC())
		}
	}
	sameTime("mtime", e.ModTime, me.ModTime)
	// Reading a symlink moves its atime (and that of every other name of
	// the same inode), so only files and directories keep theirs through
	// a walk.
	if has&sources.HasAccessTime != 0 && (me.IsRegular() || me.IsDir()) {
		sameTime("atime", e.AccessTime, me.AccessTime)
	}
	if has&sources.HasChangeTime != 0 {
		sameTime("ctime", e.ChangeTime, me.ChangeTime)
	}
	if e.UID != me.UID || e.GID != me.GID {
		errorf("owner %d:%d, want %d:%d", e.UID, e.GID, me.UID, me.GID)
	}
	if has&sources.HasOwnerNames != 0 && (e.User != me.User || e.Group != me.Group) {
		errorf("owner names %q:%q, want %q:%q", e.User, e.Group, me.User, me.Group)
	}
	if has&sources.HasInode != 0 && e.Inode != me.Inode {
		errorf("inode %d, want %d", e.Inode, me.Inode)
	}
	if has&sources.HasDeviceID != 0 && e.DeviceID != me.DeviceID {
		errorf("device ID %d, want %d", e.DeviceID, me.DeviceID)
	}
	if has&sources.HasLinks != 0 && e.Links != me.Links {
		errorf("links %d, want %d", e.Links, me.Links)
	}
	if e.LinkTarget != me.LinkTarget {
		errorf("link target %q, want %q", e.LinkTarget, me.LinkTarget)
	}
	if has&sources.HasDevices != 0 && e.Device != me.Rdev {
		errorf("device %#x, want %#x", e.Device, me.Rdev)
	}
	if has&sources.HasXattrs != 0 && f.m.Features.Xattrs {
		var user []sources.Xattr
		for _, x := range e.Xattrs {
			if strings.HasPrefix(x.Name, "user.") {
				user = append(user, x)
			}
			if x.Value == nil {
				errorf("xattr %q has a nil value; empty values must be []byte{}", x.Name)
			}
		}
		same := len(user) == len(me.Xattrs)
		for i := 0; same && i < len(user); i++ {
			same = user[i].Name == me.Xattrs[i].Name && bytes.Equal(user[i].Value, me.Xattrs[i].Value)
		}
		if !same {
			errorf("user xattrs %q, want %q in listxattr order", user, me.Xattrs)
		}
	}
	if (e.Open != nil) != me.IsRegular() {
		errorf("Open set: %v, want %v", e.Open != nil, me.IsRegular())
	}
}

func (s *suite) testContent(t *testing.T) {
	f := s.open(t, s.h.Fixture)
	r := newRecorder(f.info.Streamed)
	r.mustWalk(t, f, sources.WalkOptions{})
	var files []*testtree.File
	for i := range f.m.Files {
		me := &f.m.Files[i]
		if me.IsRegular() && s.ignored(f, me) == "" {
			files = append(files, me)
		}
	}
	if f.info.Streamed {
		for _, me := range files {
			p := f.snap(me.Path)
			if err := r.readErr[p]; err != nil {
				t.Errorf("%q: reading during Visit: %v", me.Path, err)
			} else if r.hashes[p] != me.SHA256 {
				t.Errorf("%q: content read during Visit differs", me.Path)
			}
		}
		return
	}
	// Non-streamed sources must serve Open after the walk, concurrently;
	// the same file is read twice at once to show readers are independent.
	files = append(files, files[0])
	var g errgroup.Group
	g.SetLimit(8)
	var mu sync.Mutex
	for _, me := range files {
		e := r.entries[f.snap(me.Path)]
		if e == nil {
			continue
		}
		g.Go(func() error {
			sum, err := hashOpen(t.Context(), e)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("%q: %v", me.Path, err)
			} else if sum != me.SHA256 {
				t.Errorf("%q: content read through Open differs from the file", me.Path)
			}
			return nil
		})
	}
	_ = g.Wait()
}

func (s *suite) testWalkTwice(t *testing.T) {
	f := s.open(t, s.h.Fixture)
	a, b := newRecorder(f.info.Streamed), newRecorder(f.info.Streamed)
	a.mustWalk(t, f, sources.WalkOptions{})
	if f.info.Streamed {
		// A stream can be walked once; a second walk must fail cleanly or
		// repeat the first one.
		if err := b.walk(t, f, sources.WalkOptions{}); err != nil {
			return
		}
	} else {
		b.mustWalk(t, f, sources.WalkOptions{})
	}
	if !slices.Equal(a.events, b.events) {
		t.Fatalf("two walks of an unchanged tree differ: %d and %d events", len(a.events), len(b.events))
	}
	for p, ea := range a.entries {
		eb := b.entries[p]
		if ea.Mode != eb.Mode || ea.Size != eb.Size || !ea.ModTime.Equal(eb.ModTime) || ea.Inode != eb.Inode || ea.LinkTarget != eb.LinkTarget {
			t.Errorf("%q: entries of two walks differ", p)
		}
	}
}
