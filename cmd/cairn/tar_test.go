package main

import (
	stdtar "archive/tar"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/internal/testtree"
)

// gnuTarBin returns GNU tar (Debian's tar package), which writes the
// archives these tests back up.
func gnuTarBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tar")
	if err != nil {
		testtools.Unavailable(t, "GNU tar not in PATH: %v", err)
		return ""
	}
	if out, err := exec.Command(p, "--version").Output(); err != nil || !strings.Contains(string(out), "GNU tar") {
		testtools.Unavailable(t, "%s is not GNU tar: %v", p, err)
	}
	return p
}

// tarFormat is how one GNU tar format is tested: what it cannot carry is
// left out of the archive (tar would fail on it) and of the comparison.
type tarFormat struct {
	name   string // the subtest
	format string // tar --format
	extra  []string
	// seconds: the format stores whole seconds, so the fixture's times
	// are truncated before archiving.
	seconds bool
	xattrs  bool
	// exclude lists fixture paths the format cannot hold.
	exclude []string
	// viaStdin pipes the archive into cairn; otherwise cairn runs tar
	// with --stdin-from-command.
	viaStdin bool
}

var tarFormats = []tarFormat{
	{name: "posix", format: "posix", xattrs: true},
	// Sparse files as PAX 1.0 sparse members, and in the old GNU format.
	{name: "posix-sparse", format: "posix", xattrs: true, extra: []string{"--sparse", "--sparse-version=1.0"}, viaStdin: true},
	{name: "gnu-sparse", format: "gnu", seconds: true, extra: []string{"--sparse"}, viaStdin: true},
	{name: "ustar", format: "ustar", seconds: true, exclude: []string{
		// ustar: names up to 100+155 bytes, link targets up to 100, ids
		// up to 2097151, times from 1970 to 2242.
		"names/" + strings.Repeat("D", 255),
		"names/" + strings.Repeat("L", 255),
		"names/" + strings.Repeat("日", 85),
		"links/long",
		"owners/max",
		"times/pre-1970", "times/1901", "times/dir-pre-1970",
	}},
}

// GNU tar archives of the fixture tree in three formats, backed up with
// --stdin-tar: restic checks the repository clean (reading all data) and
// restic's restore reproduces the tree within what each format carries;
// a second run of the same stream finds its parent and stores no data.
func TestBackupStdinTarGNUTar(t *testing.T) {
	bin := gnuTarBin(t)
	for _, f := range tarFormats {
		t.Run(f.name, func(t *testing.T) {
			testStdinTar(t, bin, f)
		})
	}
}

func testStdinTar(t *testing.T, bin string, f tarFormat) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	o := oracleFor(t)
	src := filepath.Join(t.TempDir(), "src")
	m := testtree.Build(t, src, testtree.Options{SmallFiles: 50})
	if f.seconds {
		truncateTimes(t, src)
	}
	tarCmd := append([]string{bin, "--format=" + f.format, "-C", "/", "-cf", "-"}, f.extra...)
	if f.xattrs {
		tarCmd = append(tarCmd, "--xattrs", "--xattrs-include=*")
	}
	for _, ex := range f.exclude {
		// Member names, as tar matches them: no leading slash.
		tarCmd = append(tarCmd, "--exclude="+strings.TrimPrefix(filepath.Join(src, ex), "/"))
	}
	tarCmd = append(tarCmd, strings.TrimPrefix(src, "/"))

	backup := func() map[string]any {
		t.Helper()
		args := []string{"--stdin-tar", "--stdin-tar-path", src, "--host", "tarhost"}
		if !f.viaStdin {
			return backupJSON(t, r, append(append(args, "--stdin-from-command", "--"), tarCmd...)...)
		}
		var stderr bytes.Buffer
		cmd := exec.CommandContext(t.Context(), tarCmd[0], tarCmd[1:]...)
		cmd.Stderr = &stderr
		archive, err := cmd.Output()
		if err != nil {
			t.Fatalf("tar: %v\n%s", err, stderr.String())
		}
		return backupJSON(t, r.withStdin(bytes.NewReader(archive)), args...)
	}
	first := backup()
	if first["files_new"].(float64) < 100 || first["data_blobs"].(float64) == 0 {
		t.Errorf("first backup: %v", first)
	}
	o.MustCheck(dir, true)

	target := t.TempDir()
	o.Restore(dir, "latest", target)
	opts := testtree.CompareOptions{
		IgnoreXattrs: !f.xattrs,
		// Checked below: restic restores hard links of regular files
		// only, never of symlinks, from any backup.
		IgnoreHardLinks: true,
		Ignore: func(p string) bool {
			for _, ex := range f.exclude {
				if p == ex {
					return true
				}
			}
			return false
		},
	}
	testtree.Compare(t, m.Root, filepath.Join(target, src), opts)
	checkHardLinks(t, m, filepath.Join(target, src))
	// Sanity: the comparison saw the awkward parts.
	for _, p := range []string{"names/new\nline", "links/non-utf8", "files/sparse.img", "hardlinks/sub/c", "special/fifo"} {
		if _, err := os.Lstat(filepath.Join(target, src, p)); err != nil {
			t.Errorf("restored tree lacks %q: %v", p, err)
		}
	}

	// The same stream again: the parent is found (same host and paths),
	// every file is unchanged and no data is stored.
	second := backup()
	if second["files_new"].(float64) != 0 || second["files_changed"].(float64) != 0 ||
		second["files_unmodified"].(float64) != first["files_new"].(float64) || second["data_blobs"].(float64) != 0 {
		t.Errorf("second run of the same stream: %v\nfirst: %v", second, first)
	}
	var sns []map[string]any
	decode(t, r.ok("snapshots", "--json").stdout, &sns)
	if len(sns) != 2 || sns[1]["parent"] != sns[0]["id"] || sns[1]["paths"].([]any)[0] != src || sns[1]["hostname"] != "tarhost" {
		t.Errorf("snapshots: %v", sns)
	}
}

// checkHardLinks checks that every hard-link group of regular files in
// the fixture is one inode again in the restored tree.
func checkHardLinks(t *testing.T, m *testtree.Manifest, restored string) {
	t.Helper()
	groups := 0
	for _, g := range m.HardLinkGroups() {
		if leader, _ := m.Lookup(g[0]); !leader.IsRegular() {
			continue
		}
		groups++
		var first os.FileInfo
		for _, p := range g {
			fi, err := os.Lstat(filepath.Join(restored, p))
			if err != nil {
				t.Errorf("hard link %s: %v", p, err)
				continue
			}
			if first == nil {
				first = fi
			} else if !os.SameFile(first, fi) {
				t.Errorf("%s is not a hard link to %s after the restore", p, g[0])
			}
		}
	}
	if groups < 3 {
		t.Errorf("only %d hard-link groups of files in the fixture", groups)
	}
}

// truncateTimes drops the sub-second part of every modification time in
// the tree (formats without PAX records store whole seconds).
func truncateTimes(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		ts := []unix.Timespec{
			{Sec: st.Atim.Sec}, {Sec: st.Mtim.Sec},
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// goArchive writes members with archive/tar.
func goArchive(t *testing.T, members map[string]string, order ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := stdtar.NewWriter(&buf)
	for _, name := range order {
		data := members[name]
		if err := w.WriteHeader(&stdtar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Bad streams and failing commands create no snapshot; a member whose
// name climbs out with ".." is refused with a warning (exit 3) and
// nothing lands outside the snapshot.
func TestBackupStdinTarBadInput(t *testing.T) {
	gnuTarBin(t)
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	snapshots := func() int {
		var sns []map[string]any
		decode(t, r.ok("snapshots", "--json").stdout, &sns)
		return len(sns)
	}
	good := goArchive(t, map[string]string{"a/x": strings.Repeat("x", 5000), "a/y": "y"}, "a/x", "a/y")

	for name, tc := range map[string]struct {
		stdin []byte
		args  []string
		want  string
	}{
		"truncated": {stdin: good[:1500], want: "malformed or truncated archive"},
		// a/x: a header and 10 blocks, a/y: a header and 1 block; cut
		// right before the end-of-archive marker.
		"no end marker":     {stdin: good[:13*512], want: "end-of-archive marker"},
		"garbage":           {stdin: bytes.Repeat([]byte("garbage\n"), 1000), want: "at the start of the archive"},
		"empty":             {stdin: []byte{}, want: "no data read"},
		"command fails":     {args: []string{"--stdin-from-command", "--", "sh", "-c", "tar -cf - -C / etc/hostname; echo oops >&2; exit 4"}, want: "exit status 4"},
		"command truncates": {args: []string{"--stdin-from-command", "--", "sh", "-c", "tar -cf - -C / etc | head -c 3000; exit 2"}, want: "exit status 2"},
		"command garbage":   {args: []string{"--stdin-from-command", "--", "yes"}, want: "malformed or truncated"},
	} {
		t.Run(name, func(t *testing.T) {
			rr := r
			if tc.stdin != nil {
				rr = r.withStdin(bytes.NewReader(tc.stdin))
			}
			res := rr.expect(exitFatal, append([]string{"backup", "--stdin-tar"}, tc.args...)...)
			if !strings.Contains(res.stderr, tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, res)
			}
		})
	}
	if n := snapshots(); n != 0 {
		t.Fatalf("%d snapshots after failed backups", n)
	}
	o := oracleFor(t)
	o.MustCheck(dir, false)

	evil := goArchive(t, map[string]string{"../../escape": "evil", "ok/../../../x": "evil", "ok/file": "fine"}, "../../escape", "ok/../../../x", "ok/file")
	res := r.withStdin(bytes.NewReader(evil)).expect(exitIncomplete, "backup", "--stdin-tar")
	if !strings.Contains(res.stderr, `contains ".."`) {
		t.Errorf("no warning for the .. members:\n%s", res)
	}
	target := filepath.Join(t.TempDir(), "restore")
	r.ok("restore", "latest", "--target", target)
	var got []string
	filepath.WalkDir(filepath.Dir(target), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, strings.TrimPrefix(p, filepath.Dir(target)+"/"))
		}
		return nil
	})
	if strings.Join(got, ",") != "restore/ok/file" {
		t.Errorf("restored files %q, want only restore/ok/file", got)
	}
}

// Flags that make no sense together are refused before anything runs;
// --stdin keeps restic's single-file behaviour.
func TestBackupStdinTarFlags(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	for _, args := range [][]string{
		{"--stdin", "--stdin-tar"},
		{"--stdin-tar-path", "/srv"},
		{"--stdin-tar", "/etc"},
		{"--stdin-tar", "--stdin-filename", "x"},
		{"--stdin-tar", "--stdin-tar-path", "relative"},
		{"--stdin-tar", "--stdin-from-command"},
	} {
		res := r.withStdin(strings.NewReader("")).run(append([]string{"backup"}, args...)...)
		if res.code != exitFatal {
			t.Errorf("%v accepted: %s", args, res)
		}
	}
	// Without a password source, stdin cannot carry both.
	res := newRunner(t).with("RESTIC_REPOSITORY="+dir).withStdin(strings.NewReader("")).run("backup", "--stdin-tar")
	if res.code != exitFatal || !strings.Contains(res.stderr, "password and data") {
		t.Errorf("%s", res)
	}
	// --stdin still stores the stream as one file, tar or not.
	archive := goArchive(t, map[string]string{"a": "b"}, "a")
	mine := backupJSON(t, r.withStdin(bytes.NewReader(archive)), "--stdin", "--stdin-filename", "x.tar")
	if mine["files_new"] != float64(1) || mine["total_bytes_processed"] != float64(len(archive)) {
		t.Errorf("--stdin summary %v", mine)
	}
}

// Archive quirks through the whole command: exclude patterns match the
// member names, a member listed twice keeps its later content, parents the
// archive never lists are made, PAX long names survive, and restic
// restores the result.
func TestBackupStdinTarQuirks(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	long := "srv/app/" + strings.Repeat("long-directory-name/", 20) + "file"
	archive := goArchive(t, map[string]string{
		"srv/app/a.log": "log", "srv/app/cache/x": "cached", long: "deep",
	}, "srv/app/a.log", "srv/app/cache/x", long)
	// The same name again, later in the stream, with other content.
	archive = append(goArchive(t, map[string]string{"srv/app/keep": "old"}, "srv/app/keep")[:1024],
		append(goArchive(t, map[string]string{"srv/app/keep": "new"}, "srv/app/keep")[:1024], archive...)...)
	sum := backupJSON(t, r.withStdin(bytes.NewReader(archive)), "--stdin-tar", "--stdin-tar-path", "/srv/app",
		"--exclude", "*.log", "--exclude", "/srv/app/cache")
	if sum["files_new"] == float64(0) {
		t.Fatalf("summary %v", sum)
	}
	o := oracleFor(t)
	o.MustCheck(dir, true)
	target := t.TempDir()
	o.Restore(dir, "latest", target)
	for p, want := range map[string]string{"srv/app/keep": "new", long: "deep", "srv/app/a.log": "", "srv/app/cache/x": ""} {
		got, err := os.ReadFile(filepath.Join(target, p))
		switch {
		case want == "" && err == nil:
			t.Errorf("%s restored although excluded", p)
		case want != "" && (err != nil || string(got) != want):
			t.Errorf("%s: %q (%v), want %q", p, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(target, "srv/app")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("implied directory srv/app: %v %v", fi, err)
	}
	var sns []map[string]any
	decode(t, r.ok("snapshots", "--json").stdout, &sns)
	if ex := sns[0]["excludes"]; ex == nil || len(ex.([]any)) != 2 {
		t.Errorf("excludes not recorded: %v", sns[0])
	}
}
