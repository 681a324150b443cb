package testtree

import (
	"bytes"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// Sizes of the larger files; exported so tests can pick exclude thresholds
// between them.
const (
	// RandomSize is the size of files/random.bin: several restic chunks of
	// incompressible data.
	RandomSize = 3<<20 + 12345
	// SparseSize is the logical size of files/sparse.img.
	SparseSize = 5 << 20
	// TextSize is about the size of the compressible files/text.log.
	TextSize = 300 << 10
)

// CacheDirSignature is what a CACHEDIR.TAG file starts with
// (https://bford.info/cachedir/), and what restic's --exclude-caches checks.
const CacheDirSignature = "Signature: 8a477f597d28d172789f06886806bc55"

// OddNames are the file names in names/: every byte sequence that has
// tripped up a name encoder, a quoting rule, a glob or a shell.
var OddNames = []string{
	`quote"s`,
	`back\slash`,
	"tab\there",
	"new\nline",
	"cr\rname",
	"ctrl\x01\x1b\x7f",
	"html<&>",
	"ls\u2028x",
	"ps\u2029x",
	"nbsp\u00a0x",
	"emoji-\U0001F600",
	"-leading-dash",
	" leading space",
	"trailing space ",
	"ünïcödé 日本",
	"bad\xffutf8",
	"latin1-\xe9t\xe9",
	"star*?[x]",
	"#hash",
	"~tilde",
	"$dollar",
	"percent%s%d",
	"semi;colon|pipe",
	".hidden",
	"..dots",
	"...",
	"A", "a", "B", "_", "Z", "ä", "\xff",
	strings.Repeat("L", 255),
	strings.Repeat("日", 85), // 255 bytes of UTF-8
}

// populate makes the standard tree. The order of calls is the order in
// which generated times are handed out, so keep it stable.
func (b *builder) populate() {
	if b.opts.UnreadableOnly {
		b.populateUnreadable()
		return
	}
	b.populateFiles()
	b.populateDirs()
	b.populateModes()
	b.populateNames()
	b.populateLinks()
	b.populateHardLinks()
	b.populateSpecial()
	b.populateOwners()
	b.populateTimes()
	b.populateXattrs()
	b.populateExcl()
	b.populateDeep()
	b.populateMany()
	if b.opts.Unreadable {
		b.populateUnreadable()
	}
}

func (b *builder) populateFiles() {
	b.dir("files", 0o755)
	b.file("files/empty", 0o644, nil)
	b.file("files/tiny", 0o644, []byte("x"))
	b.file("files/small.txt", 0o644, []byte("a small text file\n"))
	b.file("files/random.bin", 0o644, b.random(RandomSize))
	b.file("files/text.log", 0o644, b.text(TextSize))
	b.file("files/zeros.bin", 0o644, make([]byte, 600<<10))
	b.sparse("files/sparse.img", SparseSize, map[int64][]byte{
		0:       b.random(64 << 10),
		2 << 20: b.random(100<<10 + 7),
	})
}

func (b *builder) populateDirs() {
	b.dir("dirs", 0o755)
	b.dir("dirs/empty", 0o755)
	b.dir("dirs/nested", 0o755)
	b.dir("dirs/nested/empty", 0o700)
	b.dir("dirs/dir0750", 0o750)
	b.file("dirs/dir0750/inside", 0o640, []byte("in a 0750 directory\n"))
	b.dir("dirs/sticky", 0o777|fs.ModeSticky)
	b.file("dirs/sticky/inside", 0o666, []byte("in a sticky directory\n"))
	b.dir("dirs/setgid", 0o775|fs.ModeSetgid)
	b.file("dirs/setgid/inside", 0o664, []byte("in a setgid directory\n"))
	b.dir("dirs/readonly", 0o555)
	b.file("dirs/readonly/inside", 0o444, []byte("in a read-only directory\n"))
	b.dir("dirs/dir with spaces", 0o755)
	b.file("dirs/dir with spaces/file", 0o644, []byte("spaces\n"))
}

func (b *builder) populateModes() {
	b.dir("modes", 0o755)
	for _, m := range []struct {
		name string
		perm fs.FileMode
	}{
		{"0600", 0o600},
		{"0400", 0o400},
		{"0755-exec", 0o755},
		{"0777", 0o777},
		{"setuid", 0o755 | fs.ModeSetuid},
		{"setgid", 0o755 | fs.ModeSetgid},
		{"sticky-file", 0o644 | fs.ModeSticky},
		{"all-special", 0o777 | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky},
	} {
		b.file("modes/"+m.name, m.perm, []byte("mode "+m.name+"\n"))
	}
	if b.privileged {
		// Readable only because root ignores permissions; a reader without
		// privileges meets the same thing in unreadable/.
		b.file("modes/0000", 0, []byte("mode 0000\n"))
		b.file("modes/0001", 0o001, []byte("mode 0001\n"))
	}
}

func (b *builder) populateNames() {
	b.dir("names", 0o755)
	for _, name := range OddNames {
		b.file("names/"+name, 0o644, []byte(name))
	}
	long := strings.Repeat("D", 255)
	b.dir("names/"+long, 0o755)
	b.file("names/"+long+"/"+strings.Repeat("f", 255), 0o644, []byte("long names\n"))
	b.dir("names/odd dir \xfe\n", 0o755)
	b.file("names/odd dir \xfe\n/child \"\\", 0o644, []byte("child of an odd directory\n"))
}

func (b *builder) populateLinks() {
	b.dir("links", 0o755)
	b.symlink("links/relative", "../files/tiny")
	b.symlink("links/absolute", b.abs("files/small.txt"))
	b.symlink("links/dangling", "does/not/exist")
	b.symlink("links/to-dir", "../dirs/nested")
	b.symlink("links/self-loop", "self-loop")
	b.symlink("links/non-utf8", "target-\xff\xfe")
	b.symlink("links/control", "tgt\u2028\b")
	b.symlink("links/long", strings.Repeat("t/", 2000)+"end") // 4003 bytes
	b.symlink("links/odd name \xff", "odd target \"<&>\"")
}

func (b *builder) populateHardLinks() {
	b.dir("hardlinks", 0o755)
	b.dir("hardlinks/sub", 0o755)
	b.file("hardlinks/a", 0o640, []byte("three names for one inode\n"))
	b.hardlink("hardlinks/b", "hardlinks/a")
	b.hardlink("hardlinks/sub/c", "hardlinks/a")
	b.file("hardlinks/pair-1", 0o644, []byte("two names\n"))
	b.hardlink("files/pair-2", "hardlinks/pair-1")
	b.symlink("hardlinks/symlink", "a")
	b.hardlink("hardlinks/symlink-2", "hardlinks/symlink")
}

func (b *builder) populateSpecial() {
	b.dir("special", 0o755)
	b.fifo("special/fifo", 0o644)
	b.fifo("special/fifo-0600", 0o600)
	b.socket("special/socket", 0o755)
	b.device("special/chardev", fs.ModeDevice|fs.ModeCharDevice|0o644, 1, 3)
	b.device("special/blockdev", fs.ModeDevice|0o640, 7, 99)
	// Numbers past 8 bits show whether a writer keeps Linux's split
	// major/minor encoding of st_rdev.
	b.device("special/chardev-big", fs.ModeDevice|fs.ModeCharDevice|0o600, 511, 70000)
	b.device("special/blockdev-big", fs.ModeDevice|0o600, 259, 1048575)
}

func (b *builder) populateOwners() {
	b.dir("owners", 0o755)
	for _, o := range []struct {
		name     string
		uid, gid uint32
	}{
		{"nobody", 65534, 65534},        // has passwd and group entries
		{"daemon", 1, 1},                // low ids with names
		{"no-passwd", 54321, 54322},     // no names anywhere
		{"mixed", 65534, 54322},         // a user name but no group name
		{"max", 4294967294, 4294967294}, // (uint32)-2, the largest valid id
		{"root-user-other-group", 0, 54322},
	} {
		n := b.file("owners/"+o.name, 0o644, []byte("owned by "+o.name+"\n"))
		b.owner(n, o.uid, o.gid)
	}
	d := b.dir("owners/dir-nobody", 0o750)
	b.owner(d, 65534, 65534)
	n := b.file("owners/dir-nobody/file", 0o600, []byte("in a directory owned by nobody\n"))
	b.owner(n, 65534, 65534)
	l := b.symlink("owners/link", "nobody")
	b.owner(l, 54321, 54322)
}

// Times outside the usual range. Far-future stays below 2262, where
// nanoseconds since 1970 overflow an int64 (restic restores times as
// UnixNano).
var (
	TimeNano      = time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	TimePre1970   = time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC)
	TimeOld       = time.Date(1901, 12, 14, 0, 0, 0, 999999999, time.UTC)
	TimeEpoch     = time.Unix(0, 0).UTC()
	TimeNear2038  = time.Date(2038, 1, 19, 3, 14, 8, 0, time.UTC)
	TimeFuture    = time.Date(2100, 1, 1, 0, 0, 0, 500000000, time.UTC)
	TimeFarFuture = time.Date(2200, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

func (b *builder) populateTimes() {
	b.dir("times", 0o755)
	for _, tt := range []struct {
		name         string
		mtime, atime time.Time
	}{
		{"nanoseconds", TimeNano, TimeNano.Add(time.Hour + 1)},
		{"pre-1970", TimePre1970, TimePre1970.Add(-time.Hour)},
		{"1901", TimeOld, TimeOld},
		{"epoch", TimeEpoch, TimeEpoch.Add(1)},
		{"after-2038", TimeNear2038, TimeNear2038},
		{"future", TimeFuture, TimeNano},
		{"far-future", TimeFarFuture, TimeFarFuture},
		{"whole-seconds", time.Date(2020, 2, 29, 12, 0, 0, 0, time.UTC), time.Date(2020, 2, 29, 12, 0, 1, 0, time.UTC)},
	} {
		n := b.file("times/"+tt.name, 0o644, []byte(tt.name+"\n"))
		setTimes(n, tt.mtime, tt.atime)
	}
	d := b.dir("times/dir-pre-1970", 0o755)
	setTimes(d, TimePre1970.Add(-1), TimePre1970)
	n := b.file("times/dir-pre-1970/file", 0o644, []byte("old\n"))
	setTimes(n, TimePre1970, TimePre1970)
	l := b.symlink("times/link", "nanoseconds")
	setTimes(l, TimeNano.Add(1), TimeNano.Add(2))
	f := b.fifo("times/fifo", 0o644)
	setTimes(f, TimeFuture.Add(3), TimeFuture)
}

func (b *builder) populateXattrs() {
	b.dir("xattrs", 0o755)
	b.file("xattrs/file", 0o644, []byte("has attributes\n"))
	b.xattr("xattrs/file", "user.text", []byte("hello"))
	b.xattr("xattrs/file", "user.empty", nil)
	b.xattr("xattrs/file", "user.binary", []byte{0, 1, 2, 0xff, 0xfe, '\n', 0})
	b.xattr("xattrs/file", "user.big", b.random(3000))
	b.xattr("xattrs/file", "user.ünïcode name", []byte("ü"))
	b.xattr("xattrs/file", "user.a", []byte("last set, sorts first"))
	b.dir("xattrs/dir", 0o755)
	b.xattr("xattrs/dir", "user.dir", []byte("on a directory"))
	b.file("xattrs/dir/plain", 0o644, []byte("no attributes\n"))
	b.file("xattrs/hardlinked", 0o644, []byte("attributes shared by two names\n"))
	b.xattr("xattrs/hardlinked", "user.shared", []byte("same inode"))
	b.hardlink("xattrs/hardlinked-2", "xattrs/hardlinked")
}

// populateExcl holds what the exclude tests aim at: a marker file, cache
// directories with good and bad tags, names for patterns, sizes for
// --exclude-larger-than.
func (b *builder) populateExcl() {
	b.dir("excl", 0o755)
	b.dir("excl/marked", 0o755)
	b.file("excl/marked/.nobackup", 0o644, []byte("marker\n"))
	b.file("excl/marked/file", 0o644, []byte("left out by --exclude-if-present\n"))
	b.dir("excl/marked/sub", 0o755)
	b.file("excl/marked/sub/deeper", 0o644, []byte("also left out\n"))
	b.dir("excl/cache", 0o755)
	b.file("excl/cache/CACHEDIR.TAG", 0o644, []byte(CacheDirSignature+"\n# This file is a cache directory tag.\n"))
	b.file("excl/cache/blob", 0o644, []byte("cached data\n"))
	b.dir("excl/badcache", 0o755)
	b.file("excl/badcache/CACHEDIR.TAG", 0o644, []byte("Signature: not the right one\n"))
	b.file("excl/badcache/kept", 0o644, []byte("kept: the tag is invalid\n"))
	b.file("excl/app.log", 0o644, []byte("a log line\n"))
	b.file("excl/APP.LOG", 0o644, []byte("a shouting log line\n"))
	b.file("excl/keep.txt", 0o644, []byte("keep me\n"))
	b.dir("excl/logs", 0o755)
	b.file("excl/logs/x.log", 0o644, []byte("more logs\n"))
	b.file("excl/logs/x.txt", 0o644, []byte("not a log\n"))
	b.dir("excl/skipdir", 0o755)
	b.file("excl/skipdir/inner", 0o644, []byte("inside a directory excluded by pattern\n"))
	b.file("excl/big.bin", 0o644, b.random(1<<20+1))
	b.file("excl/exactly-1M.bin", 0o644, b.random(1<<20))
}

func (b *builder) populateDeep() {
	p := "deep"
	b.dir(p, 0o755)
	for i := 1; i <= b.opts.Depth; i++ {
		p += fmt.Sprintf("/d%02d", i)
		b.dir(p, 0o755)
	}
	b.file(p+"/leaf", 0o644, []byte("at the bottom\n"))
}

func (b *builder) populateMany() {
	b.dir("many", 0o755)
	for i := range b.opts.SmallFiles {
		size := b.rng.IntN(2000)
		if i%50 == 0 {
			size = 0
		}
		b.file(fmt.Sprintf("many/f%05d", i), 0o644, b.random(size))
	}
}

func (b *builder) populateUnreadable() {
	b.dir("unreadable", 0o755)
	d := b.dir("unreadable/dir", 0)
	d.blockDirs, d.Unreadable = true, true
	n := b.file("unreadable/dir/inside", 0o644, []byte("behind a 0000 directory\n"))
	n.Unreadable = true
	f := b.file("unreadable/file", 0, []byte("a 0000 file\n"))
	f.Unreadable = true
	x := b.dir("unreadable/noexec", 0o644)
	x.blockDirs = true
	n = b.file("unreadable/noexec/x", 0o644, []byte("listable but not reachable\n"))
	n.Unreadable = true
	b.file("unreadable/zz-after", 0o644, []byte("sorts after the unreadable entries\n"))
}

// random returns n deterministic pseudo-random bytes.
func (b *builder) random(n int) []byte {
	buf := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := b.rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	return buf
}

// text returns about n bytes of log-like, well-compressible text.
func (b *builder) text(n int) []byte {
	var buf bytes.Buffer
	levels := []string{"INFO", "WARN", "DEBUG", "ERROR"}
	words := []string{"backup", "chunk", "pack", "index", "tree", "snapshot", "lock", "key", "blob", "restore"}
	t := baseTime
	for i := 0; buf.Len() < n; i++ {
		t = t.Add(time.Duration(b.rng.IntN(1000)) * time.Millisecond)
		fmt.Fprintf(&buf, "%s %-5s worker=%d %s %s id=%08x bytes=%d\n",
			t.Format(time.RFC3339Nano), levels[b.rng.IntN(len(levels))], b.rng.IntN(8),
			words[b.rng.IntN(len(words))], words[b.rng.IntN(len(words))], b.rng.Uint32(), b.rng.IntN(1<<20))
	}
	return buf.Bytes()
}
