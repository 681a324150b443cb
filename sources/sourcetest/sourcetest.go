package sourcetest

import (
	"os"
	"path"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/sources"
)

// Harness tells the suite how to open the source under test.
type Harness struct {
	// Open returns a source whose single target is the fixture directory
	// dir (an absolute local path). The suite closes it.
	Open func(t *testing.T, dir string) sources.Source
	// Root returns the snapshot path at which the source puts the fixture
	// directory itself, given the source's Info. nil means restic's layout:
	// the first of Info.Paths without its leading slash.
	Root func(info sources.Info) string
	// Fixture shapes the fixture tree; the zero value is the standard tree
	// with 300 small files in many/, enough to span several directory
	// chunks while keeping the suite quick.
	Fixture testtree.Options
	// Ignore names fixture entries the source cannot represent, with the
	// reason (logged); "" keeps the entry. Entries below an ignored
	// directory are ignored too. nil keeps everything.
	Ignore func(f *testtree.File) string
	// Inexact names fixture entries the source visits but cannot describe
	// exactly (an SFTP server sends times as unsigned 32-bit seconds, so
	// a pre-1970 mtime arrives wrapped), with the reason (logged): they
	// must be visited with the right type, and their other metadata is
	// not compared. nil compares everything.
	Inexact func(f *testtree.File) string
	// HidesUnsearchable says the source cannot see the names in a
	// directory it may read but not search (OpenSSH's sftp-server drops
	// every name it cannot lstat): the Unreadable subtest then wants an
	// fs.ErrPermission report for that directory instead of one for each
	// entry inside it.
	HidesUnsearchable bool
	// ReaderPrivileged reports whether the source reads the fixture with
	// privileges that ignore file permissions. nil means it reads in this
	// process, privileged when running as root: the Unreadable subtest
	// then re-runs itself in a child process with uid and gid 65534. A
	// source that reads elsewhere (an SFTP server) must answer for its
	// reader; a privileged one fails that subtest, since nothing would be
	// unreadable.
	ReaderPrivileged func() bool
}

// childEnv marks the child process that runs the Unreadable subtest
// without privileges.
const childEnv = "CAIRN_SOURCETEST_UNPRIVILEGED"

// Run runs the conformance suite against the source the harness opens.
// Every subtest builds its own fixture with package testtree.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("sourcetest: Harness.Open is nil")
	}
	if h.Fixture.SmallFiles == 0 {
		h.Fixture.SmallFiles = 300
	}
	s := &suite{h: h}
	if os.Getenv(childEnv) != "" {
		// The child process runs only the subtest it was started for (the
		// -test.run pattern selects it); the others would need root.
		t.Run("Unreadable", s.testUnreadable)
		return
	}
	t.Run("Info", s.testInfo)
	t.Run("Entries", s.testEntries)
	t.Run("Order", s.testOrder)
	t.Run("Metadata", s.testMetadata)
	t.Run("Content", s.testContent)
	t.Run("WalkTwice", s.testWalkTwice)
	t.Run("Excludes", func(t *testing.T) {
		t.Run("Pattern", s.testExcludePattern)
		t.Run("IfPresent", s.testExcludeIfPresent)
		t.Run("LargerThan", s.testExcludeLargerThan)
	})
	t.Run("Unreadable", s.testUnreadable)
	t.Run("Vanished", s.testVanished)
	t.Run("Cancel", s.testCancel)
}

type suite struct {
	h Harness
}

// fixture builds a fixture and opens the source on it.
type fixture struct {
	m    *testtree.Manifest
	src  sources.Source
	info sources.Info
	root string // snapshot path of the fixture directory
}

func (s *suite) open(t *testing.T, opts testtree.Options) *fixture {
	t.Helper()
	dir := t.TempDir() + "/fixture"
	m := testtree.Build(t, dir, opts)
	src := s.h.Open(t, m.Root)
	if src == nil {
		t.Fatal("sourcetest: Harness.Open returned nil")
	}
	t.Cleanup(func() {
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	info := src.Info()
	root := ""
	if s.h.Root != nil {
		root = s.h.Root(info)
	} else if len(info.Paths) > 0 {
		root = strings.TrimPrefix(info.Paths[0], "/")
	}
	return &fixture{m: m, src: src, info: info, root: root}
}

// rel maps a snapshot path to a fixture path; ok is false outside it.
func (f *fixture) rel(p string) (string, bool) {
	switch {
	case p == f.root:
		return "", true
	case f.root == "":
		return p, true
	case strings.HasPrefix(p, f.root+"/"):
		return p[len(f.root)+1:], true
	}
	return "", false
}

// snap maps a fixture path to a snapshot path.
func (f *fixture) snap(rel string) string {
	if rel == "" {
		return f.root
	}
	return path.Join(f.root, rel)
}

// ignored reports why a fixture entry is out of the comparison, "" if it
// is in.
func (s *suite) ignored(f *fixture, e *testtree.File) string {
	if s.h.Ignore == nil {
		return ""
	}
	for p := e.Path; ; {
		if pe, ok := f.m.Lookup(p); ok {
			if why := s.h.Ignore(pe); why != "" {
				return why
			}
		}
		if p == "" {
			return ""
		}
		p = path.Dir(p)
		if p == "." {
			p = ""
		}
	}
}

// optionalType reports entries a source may leave out: devices and FIFOs
// without HasDevices, sockets in streams (tar skips them).
func optionalType(f *fixture, e *testtree.File) bool {
	return (f.info.Has&sources.HasDevices == 0 && e.Mode&(os.ModeDevice|os.ModeNamedPipe) != 0) ||
		(f.info.Streamed && e.Mode&os.ModeSocket != 0)
}

// typeOf maps a fixture mode to the source entry type.
func typeOf(m os.FileMode) sources.Type {
	switch {
	case m.IsDir():
		return sources.Dir
	case m&os.ModeSymlink != 0:
		return sources.Symlink
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice != 0:
		return sources.CharDev
	case m&os.ModeDevice != 0:
		return sources.Dev
	case m&os.ModeNamedPipe != 0:
		return sources.FIFO
	case m&os.ModeSocket != 0:
		return sources.Socket
	case m.IsRegular():
		return sources.File
	}
	return sources.Irregular
}
