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

// resticSnapshot is what the tests read from `restic snapshots --json`.
type resticSnapshot struct {
	Hostname string   `json:"hostname"`
	Paths    []string `json:"paths"`
}

func resticSnapshots(t *testing.T, dir string, args ...string) []resticSnapshot {
	t.Helper()
	var snaps []resticSnapshot
	decode(t, string(oracleFor(t).MustRun(dir, append([]string{"snapshots", "--json"}, args...)...).Stdout), &snaps)
	return snaps
}

// Several hosts in one run, reached through ~/.ssh/config aliases (host
// name, port, user, identity file and known_hosts from the config alone):
// one snapshot per host, named after the alias, with that host's paths.
// An unknown host key is refused with the fingerprint and how to trust
// it, a missing path is named, and one failing host does not stop the
// others.
func TestBackupSFTPSourceHosts(t *testing.T) {
	kvm1, kvm2, stranger := sshtest.Start(t), sshtest.Start(t), sshtest.Start(t)
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	home := strings.TrimPrefix(r.env[slices.IndexFunc(r.env, func(e string) bool { return strings.HasPrefix(e, "HOME=") })], "HOME=")
	var cfg strings.Builder
	for name, srv := range map[string]*sshtest.Server{"kvm1": kvm1, "kvm2": kvm2, "stranger": stranger} {
		known := srv.KnownHosts
		if srv == stranger {
			known = filepath.Join(t.TempDir(), "empty_known_hosts")
		}
		fmt.Fprintf(&cfg, "Host %s\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile %s\n  UserKnownHostsFile %s\n",
			name, srv.Host, srv.Port, srv.User, srv.UserKey.Path, known)
	}
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	writeFiles(t, base, map[string]string{
		"a/file.txt": "a\n", "a/skip.log": "log\n", "b/file.txt": "b\n", "c/file.txt": "c\n",
	})
	a, b, c := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "c")

	res := r.ok("backup", "--exclude", "*.log", "sftp://kvm1"+a, "sftp://kvm2"+b, "sftp://kvm1"+c)
	if strings.Count(res.stdout, "snapshot ") < 2 {
		t.Errorf("want two snapshots reported:\n%s", res)
	}
	snaps := resticSnapshots(t, dir)
	if len(snaps) != 2 {
		t.Fatalf("restic sees %d snapshots, want one per host: %+v", len(snaps), snaps)
	}
	byHost := map[string][]string{}
	for _, s := range snaps {
		byHost[s.Hostname] = s.Paths
	}
	if !slices.Equal(byHost["kvm1"], []string{a, c}) || !slices.Equal(byHost["kvm2"], []string{b}) {
		t.Errorf("snapshots by host %v, want kvm1: [%s %s], kvm2: [%s]", byHost, a, c, b)
	}
	if got := resticSnapshots(t, dir, "--host", "kvm2"); len(got) != 1 {
		t.Errorf("restic snapshots --host kvm2: %+v", got)
	}
	ls := string(oracleFor(t).MustRun(dir, "ls", "latest", "--host", "kvm1").Stdout)
	if !strings.Contains(ls, a+"/file.txt") || !strings.Contains(ls, c+"/file.txt") || strings.Contains(ls, "skip.log") {
		t.Errorf("restic ls of kvm1's snapshot (--exclude '*.log'):\n%s", ls)
	}

	// An unknown host key: refused, with what to do about it.
	res = r.expect(1, "backup", "sftp://stranger"+a)
	if !strings.Contains(res.stderr, "host key verification failed") || !strings.Contains(res.stderr, stranger.HostKeyFingerprint) {
		t.Errorf("unknown host key: want a refusal naming the fingerprint %s:\n%s", stranger.HostKeyFingerprint, res)
	}
	// One host failing does not stop the others, and fails the run.
	res = r.expect(1, "backup", "sftp://stranger"+a, "sftp://kvm2"+b)
	if !strings.Contains(res.stderr, "1 of 2 hosts") {
		t.Errorf("one host of two failing:\n%s", res)
	}
	if got := resticSnapshots(t, dir, "--host", "kvm2"); len(got) != 2 {
		t.Errorf("kvm2 was not backed up beside the failing host: %d snapshots", len(got))
	}
	if got := resticSnapshots(t, dir, "--host", "stranger"); len(got) != 0 {
		t.Errorf("a snapshot of the refused host exists: %+v", got)
	}
	// A missing remote path is named.
	res = r.expect(1, "backup", "sftp://kvm1"+base+"/missing")
	if !strings.Contains(res.stderr, base+"/missing") {
		t.Errorf("missing remote path not named:\n%s", res)
	}
	// Refused combinations.
	if res := r.expect(1, "backup", "--host", "x", "sftp://kvm1"+a, "sftp://kvm2"+b); !strings.Contains(res.stderr, "--host") {
		t.Errorf("--host with two hosts:\n%s", res)
	}
	if res := r.expect(1, "backup", "sftp://kvm1"+a, b); !strings.Contains(res.stderr, "cannot be mixed") {
		t.Errorf("local and remote paths mixed:\n%s", res)
	}
	oracleFor(t).MustCheck(dir, false)
}

// Files the remote user may not read are warnings naming them: the
// snapshot is written without them and the run exits with status 3.
func TestBackupSFTPSourceUnreadable(t *testing.T) {
	var opts sshtest.Options
	if os.Geteuid() == 0 {
		// Root reads everything: the SFTP server runs as nobody instead,
		// like an unprivileged backup account.
		opts.ExtraConfig = []string{fmt.Sprintf("ForceCommand setpriv --reuid=65534 --regid=65534 --clear-groups %s", sftpServerBin)}
	}
	srv := sshtest.StartWith(t, opts)
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	src := t.TempDir()
	for p := src; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, src, map[string]string{"ok.txt": "readable\n", "secret.txt": "secret\n", "private/inside": "x\n"})
	for _, p := range []string{"secret.txt", "private"} {
		if err := os.Chmod(filepath.Join(src, p), 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(filepath.Join(src, p), 0o700) })
	}
	res := r.expect(3, "backup", "-o", "sftp.key="+srv.UserKey.Path, "-o", "sftp.known-hosts="+srv.KnownHosts, sftpSourceURL(srv, src))
	for _, p := range []string{"secret.txt", "private"} {
		if !strings.Contains(res.stderr, filepath.Join(src, p)) {
			t.Errorf("no warning naming %s:\n%s", p, res)
		}
	}
	ls := string(oracleFor(t).MustRun(dir, "ls", "latest").Stdout)
	if !strings.Contains(ls, src+"/ok.txt") || strings.Contains(ls, "secret.txt") || strings.Contains(ls, "inside") {
		t.Errorf("snapshot contents:\n%s", ls)
	}
	oracleFor(t).MustCheck(dir, true)
}

// A connection lost mid-backup fails the run without a snapshot, the
// repository stays valid, and the next run succeeds.
func TestBackupSFTPSourceConnectionLost(t *testing.T) {
	srv, logFile := loggingSSHD(t)
	proxy := sshtest.NewProxy(t, srv.Addr())
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	src := t.TempDir()
	files := map[string]string{}
	for i := range 40 {
		files[fmt.Sprintf("f%02d", i)] = strings.Repeat(fmt.Sprintf("%08d", i*7919), 1<<17) // 1 MiB each
	}
	writeFiles(t, src, files)
	url := fmt.Sprintf("sftp://%s@127.0.0.1:%d%s", srv.User, proxy.Port(), src)
	opts := []string{"-o", "sftp.key=" + srv.UserKey.Path, "-o", "sftp.host-key=" + srv.HostKeyFingerprint,
		// Notice the silent peer within seconds.
		"-o", "sftp.args=-o ServerAliveInterval=1 -o ServerAliveCountMax=2", "--read-concurrency", "1"}

	// Freeze the connection once the first file is being read.
	go func() {
		for range 600 {
			if data, _ := os.ReadFile(logFile); strings.Contains(string(data), "\nopen \"") {
				proxy.Freeze()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	res := r.run(append([]string{"backup"}, append(opts, url)...)...)
	if res.code != 1 || !strings.Contains(res.stderr, "connection to the remote host lost") {
		t.Fatalf("backup over a lost connection: want exit 1 naming the lost connection, got %s", res)
	}
	if strings.Contains(res.stderr, "context canceled") {
		t.Errorf("files abandoned after the connection was lost are reported as errors of their own:\n%s", res.stderr)
	}
	if snaps := resticSnapshots(t, dir); len(snaps) != 0 {
		t.Fatalf("a snapshot was written although the connection was lost: %+v", snaps)
	}
	oracleFor(t).MustCheck(dir, false)

	// The network is back: a new proxy, the same server.
	proxy2 := sshtest.NewProxy(t, srv.Addr())
	url = fmt.Sprintf("sftp://%s@127.0.0.1:%d%s", srv.User, proxy2.Port(), src)
	summary := backupJSON(t, r, append(opts, url)...)
	if summary["files_new"].(float64) != 40 {
		t.Errorf("second run: %v", summary)
	}
	oracleFor(t).MustCheck(dir, true)
}
