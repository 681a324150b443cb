package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/sshtest"
)

// The binary reaches an SFTP repository with restic's syntax, and the
// -o sftp.* options reach the SFTP backend (a wrong pinned host key is
// refused).
func TestSFTPRepository(t *testing.T) {
	srv := sshtest.Start(t)
	repoDir := filepath.Join(t.TempDir(), "sftp-repo")
	loc := fmt.Sprintf("sftp://%s@%s:%d/%s", srv.User, srv.Host, srv.Port, repoDir)
	opts := []string{"-o", "sftp.key=" + srv.UserKey.Path, "-o", "sftp.known-hosts=" + srv.KnownHosts, "-o", "sftp.connections=2"}
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+loc)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.txt": "over sftp\n", "d/b.bin": strings.Repeat("x", 100000)})

	r.ok(append(opts, "init")...)
	summary := backupJSON(t, r, append(opts, src)...)
	if summary["files_new"] != float64(2) {
		t.Errorf("summary %v", summary)
	}
	ls := r.ok(append(opts, "ls", "latest")...).stdout
	if !strings.Contains(ls, "/d/b.bin") {
		t.Errorf("ls:\n%s", ls)
	}
	// The same repository, seen as a directory, is a valid restic repository.
	oracleFor(t).MustCheck(repoDir, true)

	res := r.run(append(opts, "-o", "sftp.host-key=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "snapshots")...)
	if res.code == 0 || !strings.Contains(strings.ToLower(res.stderr), "host key") {
		t.Errorf("a wrong pinned host key was not refused:\n%s", res)
	}
	if res := r.run(append(opts, "-o", "sftp.colour=blue", "snapshots")...); res.code != 1 || !strings.Contains(res.stderr, "sftp.colour") {
		t.Errorf("unknown sftp option:\n%s", res)
	}
}
