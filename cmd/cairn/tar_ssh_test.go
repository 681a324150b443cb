package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/internal/testtree"
)

// sshCommand is the OpenSSH client command line that runs remote on the
// test sshd, checking its host key.
func sshCommand(t *testing.T, s *sshtest.Server, remote ...string) []string {
	t.Helper()
	bin, err := exec.LookPath("ssh")
	if err != nil {
		testtools.Unavailable(t, "OpenSSH client not in PATH: %v", err)
	}
	return append([]string{bin, "-F", "/dev/null", "-i", s.UserKey.Path, "-p", strconv.Itoa(s.Port),
		"-o", "UserKnownHostsFile=" + s.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		s.User + "@" + s.Host}, remote...)
}

// The pipeline users run today, `ssh host tar -cf - dir`, as the command
// of --stdin-tar against a real sshd: the tree restores through restic,
// a re-run stores no data, a changed file is the only one stored again,
// and a connection dropped mid-stream fails the backup without a snapshot
// while the next run succeeds.
func TestBackupStdinTarOverSSH(t *testing.T) {
	gnuTarBin(t)
	s := sshtest.Start(t)
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	o := oracleFor(t)
	src := filepath.Join(t.TempDir(), "app")
	m := testtree.Build(t, src, testtree.Options{SmallFiles: 50})
	remoteTar := sshCommand(t, s, "tar", "--format=posix", "--xattrs", "--xattrs-include='*'", "-C", "/", "-cf", "-", strings.TrimPrefix(src, "/"))
	backup := func() map[string]any {
		t.Helper()
		args := append([]string{"--stdin-tar", "--stdin-tar-path", src, "--host", "kvm1", "--stdin-from-command", "--"}, remoteTar...)
		return backupJSON(t, r, args...)
	}

	first := backup()
	o.MustCheck(dir, true)
	target := t.TempDir()
	o.Restore(dir, "latest", target)
	testtree.Compare(t, m.Root, filepath.Join(target, src), testtree.CompareOptions{IgnoreHardLinks: true})
	checkHardLinks(t, m, filepath.Join(target, src))

	second := backup()
	if second["files_new"].(float64) != 0 || second["files_changed"].(float64) != 0 || second["data_blobs"].(float64) != 0 ||
		second["files_unmodified"].(float64) != first["files_new"].(float64) {
		t.Errorf("unchanged re-run: %v", second)
	}

	// One file changes (new size and mtime): only it is stored again.
	changed := filepath.Join(src, "files", "small.txt")
	if err := os.WriteFile(changed, []byte("changed content, longer than before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	third := backup()
	if third["files_changed"].(float64) != 1 || third["files_new"].(float64) != 0 || third["data_blobs"].(float64) != 1 {
		t.Errorf("re-run after changing one file: %v", third)
	}

	// A connection dropped mid-stream: ssh fails, no snapshot. The drop
	// waits until the remote command is past its shell's start-up and has
	// written its part of the stream (the marker file): killing a session
	// while the login shell still runs its rc files can leave their locks
	// behind (pyenv's rehash lock makes every later root session wait 60 s),
	// and a drop before the connection exists kills nothing of this run.
	marker := filepath.Join(t.TempDir(), "streamed")
	slow := sshCommand(t, s, "sh", "-c", "'tar -C / -cf - "+strings.TrimPrefix(src, "/")+" | head -c 200000; touch "+marker+"; sleep 60'")
	done := make(chan result, 1)
	go func() {
		done <- r.run(append([]string{"backup", "--stdin-tar", "--stdin-tar-path", src, "--host", "kvm1", "--stdin-from-command", "--"}, slow...)...)
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		select {
		case res := <-done:
			t.Fatalf("backup ended before the connection was dropped: %s", res)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the remote command did not write its stream within 2 minutes")
		}
	}
	time.Sleep(200 * time.Millisecond) // let the bytes cross
	if n := s.DropConnections(t); n == 0 {
		t.Fatal("no ssh connection to drop")
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("backup still running 2 minutes after its ssh connection was dropped")
	}
	if res.code != exitFatal || !strings.Contains(res.stderr, "exit status 255") {
		t.Errorf("backup over a dropped connection: %s", res)
	}
	var sns []map[string]any
	decode(t, r.ok("snapshots", "--json").stdout, &sns)
	if len(sns) != 3 {
		t.Errorf("%d snapshots, want the 3 good runs", len(sns))
	}
	o.MustCheck(dir, false)
	last := backup()
	if last["files_changed"].(float64) != 0 || last["data_blobs"].(float64) != 0 {
		t.Errorf("run after the dropped one: %v", last)
	}
}
