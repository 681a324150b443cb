package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/testtree"
)

// sftpServerBin is OpenSSH's SFTP server program (Debian's path).
const sftpServerBin = "/usr/lib/openssh/sftp-server"

// loggingSSHD starts an sshd whose SFTP sessions run sftp-server with its
// INFO log (one line per opened file) appended to the returned file, so a
// test can see exactly which files a backup opened.
func loggingSSHD(t *testing.T) (*sshtest.Server, string) {
	t.Helper()
	if _, err := os.Stat(sftpServerBin); err != nil {
		t.Fatalf("sftp-server: %v (install openssh-server)", err)
	}
	logFile := filepath.Join(t.TempDir(), "sftp-server.log")
	srv := sshtest.StartWith(t, sshtest.Options{ExtraConfig: []string{
		// sshd runs a forced command through the user's shell, also for
		// subsystem requests: the redirection works.
		fmt.Sprintf("ForceCommand %s -e -l INFO 2>>%s", sftpServerBin, logFile),
	}})
	return srv, logFile
}

// openLine matches one open for reading in sftp-server's log, whose
// lines end in "\r\n" on stderr. Names are escaped (vis), and long lines
// are cut at 1 KiB: opens are counted by their line starts, and names are
// taken only from lines that are whole and plain.
var (
	openLine  = regexp.MustCompile(`(?m)^open "([^"\r\n\\]*)" flags READ mode 0[0-7]+\r?$`)
	openStart = regexp.MustCompile(`(?m)^open "`)
)

// opened returns how many files sftp-server opened for reading since the
// log was last truncated and the names of those with plain names, and
// truncates the log.
func opened(t *testing.T, logFile string) (int, []string) {
	t.Helper()
	data, err := os.ReadFile(logFile)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var files []string
	for _, m := range openLine.FindAllStringSubmatch(string(data), -1) {
		files = append(files, m[1])
	}
	if err := os.WriteFile(logFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return len(openStart.FindAllIndex(data, -1)), files
}

// wholeSeconds floors every time in the tree to whole seconds, as a
// remote file system would report them through SFTP, so that a restored
// copy can be compared exactly.
func wholeSeconds(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		ts := []unix.Timespec{{Sec: st.Atim.Sec}, {Sec: st.Mtim.Sec}}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sftpUnrepresentable lists fixture paths SFTP cannot carry: device nodes
// (no device numbers) and times outside unsigned 32-bit seconds.
func sftpUnrepresentable(m *testtree.Manifest) map[string]bool {
	lo, hi := time.Unix(0, 0), time.Unix(1<<32-1, 0)
	out := map[string]bool{}
	for _, f := range m.Files {
		if f.Mode&fs.ModeDevice != 0 || f.ModTime.Before(lo) || f.ModTime.After(hi) {
			out[f.Path] = true
		}
	}
	return out
}

// sftpSourceURL names dir on srv as a backup argument.
func sftpSourceURL(srv *sshtest.Server, dir string) string {
	return fmt.Sprintf("sftp://%s@%s:%d%s", srv.User, srv.Host, srv.Port, dir)
}

// A remote tree backed up over SFTP is a valid restic snapshot that restic
// restores to the same files; a second run opens only what changed.
func TestBackupSFTPSource(t *testing.T) {
	srv, logFile := loggingSSHD(t)
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	opts := []string{"-o", "sftp.key=" + srv.UserKey.Path, "-o", "sftp.known-hosts=" + srv.KnownHosts}
	src := filepath.Join(t.TempDir(), "srv", "app")
	m := testtree.Build(t, src, testtree.Options{SmallFiles: 40})
	wholeSeconds(t, src)
	url := sftpSourceURL(srv, src)

	first := backupJSON(t, r, append(opts, url)...)
	if first["files_new"].(float64) < 40 {
		t.Fatalf("first backup summary %v", first)
	}
	// The log sees every file read: the counts below are not vacuous.
	if n, _ := opened(t, logFile); float64(n) != first["files_new"].(float64) {
		t.Fatalf("the first backup opened %d files and stored %v new ones", n, first["files_new"])
	}
	o := oracleFor(t)
	o.MustCheck(dir, true)

	var snaps []struct {
		Hostname string   `json:"hostname"`
		Paths    []string `json:"paths"`
	}
	decode(t, string(o.MustRun(dir, "snapshots", "--json").Stdout), &snaps)
	if len(snaps) != 1 || snaps[0].Hostname != srv.Host || !slices.Equal(snaps[0].Paths, []string{src}) {
		t.Fatalf("restic sees snapshots %+v, want host %q and paths [%s]", snaps, srv.Host, src)
	}

	// restic restores the files as they are on the remote side.
	target := filepath.Join(t.TempDir(), "restored")
	o.MustRun(dir, "restore", "latest", "--target", target)
	skip := sftpUnrepresentable(m)
	testtree.Compare(t, m.Root, filepath.Join(target, src), testtree.CompareOptions{
		IgnoreRoot: true, IgnoreHardLinks: true, IgnoreXattrs: true,
		Ignore: func(p string) bool { return skip[p] },
	})

	// Unchanged: nothing is opened on the remote side.
	second := backupJSON(t, r, append(opts, url)...)
	if n, got := opened(t, logFile); n != 0 {
		t.Errorf("an unchanged re-run opened %d files: %q", n, got)
	}
	if second["files_new"].(float64) != 0 || second["files_changed"].(float64) != 0 || second["data_blobs"].(float64) != 0 {
		t.Errorf("unchanged re-run summary %v", second)
	}

	// Two files changed (one keeps its size, one keeps its mtime and
	// changes its size), one mode changed, one added: exactly those are
	// opened.
	later := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	sameSize := filepath.Join(src, "many/f00003")
	old, err := os.ReadFile(sameSize)
	if err != nil {
		t.Fatal(err)
	}
	writeFileAt(t, sameSize, []byte(strings.Repeat("z", len(old))), later)
	grown := filepath.Join(src, "many/f00007")
	st, err := os.Stat(grown)
	if err != nil {
		t.Fatal(err)
	}
	writeFileAt(t, grown, append(old, "more"...), st.ModTime())
	chmodded := filepath.Join(src, "many/f00011")
	if st, err = os.Stat(chmodded); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(chmodded, st.Mode().Perm()^0o004); err != nil {
		t.Fatal(err)
	}
	added := filepath.Join(src, "many/new-file")
	writeFileAt(t, added, []byte("new\n"), later)
	wholeSeconds(t, src) // many/ itself changed

	third := backupJSON(t, r, append(opts, url)...)
	want := []string{sameSize, grown, chmodded, added}
	slices.Sort(want)
	if n, got := opened(t, logFile); n != len(want) || !slices.Equal(got, want) {
		t.Errorf("re-run after changes opened %d files\n%q\nwant\n%q", n, got, want)
	}
	if third["files_new"].(float64) != 1 || third["files_changed"].(float64) != 3 {
		t.Errorf("re-run after changes: summary %v, want 1 new and 3 changed files", third)
	}
	o.MustCheck(dir, true)
	target2 := filepath.Join(t.TempDir(), "restored2")
	o.MustRun(dir, "restore", "latest", "--target", target2)
	testtree.Compare(t, m.Root, filepath.Join(target2, src), testtree.CompareOptions{
		IgnoreRoot: true, IgnoreHardLinks: true, IgnoreXattrs: true,
		Ignore: func(p string) bool { return skip[p] },
	})
}

func writeFileAt(t *testing.T, p string, data []byte, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}
