//go:build linux

package tree

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/repo/blob"
)

var update = flag.Bool("update", false, "rewrite testdata/restic from a live restic backup (TestResticOracle)")

// TestResticOracle backs up a directory of awkward entries with the real
// restic 0.19.1 and requires every tree blob it wrote to decode and re-encode
// to the same bytes and ID, with both encoders and both decoders. restic
// runs in America/New_York so that the times carry an offset. With -update
// the blobs become the fixtures that TestResticFixtures checks without restic.
func TestResticOracle(t *testing.T) {
	bin := testtools.Binary(t, "restic")
	if os.Geteuid() != 0 {
		testtools.Unavailable(t, "device nodes need root")
	}
	work := t.TempDir()
	makeAwkwardDir(t, filepath.Join(work, "src"))

	env := []string{"RESTIC_PASSWORD=test", "RESTIC_REPOSITORY=" + filepath.Join(work, "repo"),
		"RESTIC_CACHE_DIR=" + filepath.Join(work, "cache"), "TZ=America/New_York", "HOME=" + work,
		"PATH=" + os.Getenv("PATH")}
	restic := func(args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, append([]string{"--no-lock", "--quiet"}, args...)...)
		cmd.Dir, cmd.Env = work, env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("restic %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	restic("init")
	restic("backup", "--host", "cairn", "src")
	var snaps []struct {
		Tree string `json:"tree"`
	}
	if err := json.Unmarshal(restic("snapshots", "--json"), &snaps); err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %v, %d", err, len(snaps))
	}

	blobs := map[blob.ID][]byte{}
	var walk func(id blob.ID, depth int) *Tree
	walk = func(id blob.ID, depth int) *Tree {
		raw := restic("cat", "blob", id.String())
		blobs[id] = raw
		tr := checkRoundTrip(t, raw, id)
		for _, n := range tr.Nodes() {
			if n.Type == TypeDir && depth < 4 {
				walk(*n.Subtree, depth+1)
			}
		}
		return tr
	}
	root := walk(mustID(t, snaps[0].Tree), 0)
	src := root.Find("src")
	// root, src, sub, and the empty tree that empty-dir and sticky share
	if _, ok := blobs[EmptyID()]; src == nil || len(blobs) != 4 || !ok {
		t.Fatalf("walked %d trees (empty tree among them: %v), src %v", len(blobs), ok, src)
	}
	checkAwkwardTree(t, blobs[*src.Subtree])

	if *update {
		dir := filepath.Join("testdata", "restic")
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for id, raw := range blobs {
			if err := os.WriteFile(filepath.Join(dir, id.String()), raw, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "..", "restic-src-tree"), []byte(src.Subtree.String()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResticFixtures checks the trees TestResticOracle saved from restic.
func TestResticFixtures(t *testing.T) {
	files := readTestdata(t, "restic")
	for name, buf := range files {
		t.Run(name[:8], func(t *testing.T) { checkRoundTrip(t, buf, mustID(t, name)) })
	}
	srcID, err := os.ReadFile(filepath.Join("testdata", "restic-src-tree"))
	if err != nil {
		t.Fatal(err)
	}
	src, ok := files[strings.TrimSpace(string(srcID))]
	if !ok {
		t.Fatalf("no fixture for the src tree %s", srcID)
	}
	checkAwkwardTree(t, src)
}

// The entries of the awkward directory: names that every escaping rule
// treats differently, and link targets that are not names.
var (
	awkwardNames = []string{"bad\xffname", `quote"back\slash`, "tab\there", "ls\u2028x", "nbsp\u00a0x",
		"html<&>", "ctl\x01\x7f", "emoji😀", "ünïcödé 日本", "new\nline"}
	awkwardTargets = map[string]string{"link-bad": "tgt\xfe\xff", "link-ctl": "tgt\u2028\b", "link-html": "../a<b>&c\"d"}
)

func makeAwkwardDir(t *testing.T, dir string) {
	t.Helper()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"", "sub", "empty-dir", "sticky"} {
		check(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		check(os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	for _, name := range awkwardNames {
		write(name, name)
	}
	write("empty", "")
	write("sub/file", "in sub")
	h := write("hard1", "hard")
	check(os.Link(h, filepath.Join(dir, "hard2")))
	check(os.Chmod(write("setuid", "s"), os.ModeSetuid|0o755))
	check(os.Chmod(filepath.Join(dir, "sticky"), os.ModeSticky|0o777))
	x := write("xattrs", "x")
	for _, a := range []ExtendedAttribute{{"user.foo", []byte("bar")}, {"user.empty", []byte{}},
		{"user.bin", []byte{0, 0xff, 0xfe}}, {"user.h<tml>\u2028", []byte("v")}} {
		check(syscall.Setxattr(x, a.Name, a.Value, 0))
	}
	for name, target := range awkwardTargets {
		check(os.Symlink(target, filepath.Join(dir, name)))
	}
	check(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	check(syscall.Mknod(filepath.Join(dir, "chardev"), syscall.S_IFCHR|0o644, 1<<8|3))
	check(syscall.Mknod(filepath.Join(dir, "blockdev"), syscall.S_IFBLK|0o600, 7<<8|99))
	// Times with nanoseconds, whole seconds, in EST and EDT, and far away.
	for name, mtime := range map[string]time.Time{
		"empty":    time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC),
		"hard1":    time.Date(2024, 7, 2, 3, 4, 5, 0, time.UTC),
		"setuid":   time.Date(1901, 12, 14, 0, 0, 0, 500, time.UTC),
		"sub/file": time.Date(2400, 2, 29, 23, 59, 59, 999999999, time.UTC),
	} {
		check(os.Chtimes(filepath.Join(dir, name), mtime, mtime))
	}
}

// checkAwkwardTree checks that restic's tree of the awkward directory decodes
// to the raw names, targets, attributes and times written.
func checkAwkwardTree(t *testing.T, raw []byte) {
	t.Helper()
	tr, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Ordered() {
		t.Fatal("restic's tree not ordered by raw name")
	}
	find := func(name string) *Node {
		t.Helper()
		n := tr.Find(name)
		if n == nil {
			t.Fatalf("no node %q", name)
		}
		return n
	}
	for _, name := range awkwardNames {
		if n := find(name); n.Type != TypeFile || n.Size != uint64(len(name)) || len(n.Content) != 1 {
			t.Errorf("%q: %+v", name, n)
		}
	}
	for name, target := range awkwardTargets {
		n := find(name)
		if n.Type != TypeSymlink || n.LinkTarget != target || n.Mode != os.ModeSymlink|0o777 {
			t.Errorf("%s: target %q, mode %v", name, n.LinkTarget, n.Mode)
		}
	}
	if !strings.Contains(string(raw), `"linktarget":"tgt\ufffd\ufffd","linktarget_raw":"dGd0/v8="`) ||
		!strings.Contains(string(raw), `"linktarget":"tgt\u2028\b"`) {
		t.Error("link targets not encoded as expected")
	}
	xa := find("xattrs").ExtendedAttributes
	got := map[string]string{}
	for _, a := range xa {
		got[a.Name] = string(a.Value)
		if a.Value == nil {
			t.Errorf("xattr %q has a nil value", a.Name)
		}
	}
	if len(xa) != 4 || got["user.foo"] != "bar" || got["user.empty"] != "" || got["user.bin"] != "\x00\xff\xfe" || got["user.h<tml>\u2028"] != "v" {
		t.Errorf("xattrs %q", xa)
	}
	if e := find("empty"); e.Content == nil || len(e.Content) != 0 || e.Size != 0 {
		t.Errorf("empty file: %+v", e)
	}
	if f := find("fifo"); f.Type != TypeFifo || f.Mode != os.ModeNamedPipe|0o644 || f.Content != nil || f.Links != 0 {
		t.Errorf("fifo: %+v", f)
	}
	if c := find("chardev"); c.Type != TypeCharDev || c.Device != 259 || c.Mode != os.ModeDevice|os.ModeCharDevice|0o644 {
		t.Errorf("chardev: %+v", c)
	}
	if b := find("blockdev"); b.Type != TypeDev || b.Device != 1891 || b.Mode != os.ModeDevice|0o600 {
		t.Errorf("blockdev: %+v", b)
	}
	if s := find("setuid"); s.Mode != os.ModeSetuid|0o755 {
		t.Errorf("setuid mode %v", s.Mode)
	}
	if s := find("sticky"); s.Mode != os.ModeDir|os.ModeSticky|0o777 || s.Subtree == nil || s.Content != nil {
		t.Errorf("sticky: %+v", s)
	}
	h1, h2 := find("hard1"), find("hard2")
	if h1.Inode != h2.Inode || h1.Links != 2 || h1.DeviceID == 0 || !h1.ModTime.Equal(h2.ModTime) {
		t.Errorf("hard links: %+v %+v", h1, h2)
	}
	// restic ran in New York: the offsets are EST and EDT.
	for name, want := range map[string]string{
		"empty":  "2024-01-01T22:04:05.123456789-05:00",
		"hard1":  "2024-07-01T23:04:05-04:00",
		"setuid": "1901-12-13T19:00:00.0000005-05:00",
	} {
		if !strings.Contains(string(raw), `"mtime":"`+want+`"`) {
			t.Errorf("%s: mtime %s not in the tree", name, want)
		}
		if n := find(name); n.AccessTime != n.ModTime {
			t.Errorf("%s: atime %v != mtime %v", name, n.AccessTime, n.ModTime)
		}
	}
}
