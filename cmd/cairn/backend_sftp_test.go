package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/sshtest"
)

// Every SSH connection of an SFTP repository is dropped in the middle of a
// backup: cairn reconnects (and retries what broke), the backup completes,
// and restic finds the repository clean and restores the files.
func TestBackendSFTPConnectionsDroppedDuringBackup(t *testing.T) {
	srv := sshtest.Start(t)
	repoDir := filepath.Join(t.TempDir(), "sftp-repo")
	loc := fmt.Sprintf("sftp://%s@%s:%d/%s", srv.User, srv.Host, srv.Port, repoDir)
	opts := []string{"-o", "sftp.key=" + srv.UserKey.Path, "-o", "sftp.known-hosts=" + srv.KnownHosts}
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+loc)
	r.ok(append(opts, "init")...)

	src := t.TempDir()
	files := map[string][]byte{}
	for i, name := range []string{"a.bin", "b.bin", "c.bin"} {
		data := make([]byte, 4<<20)
		fillRandom(data)
		data[0] = byte(i)
		files[name] = data
		if err := os.WriteFile(filepath.Join(src, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := r.command(ctx, append(opts, "--pack-size", "4", "--limit-upload", "4096", "backup", src)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for countPacks(t, repoDir) == 0 {
		select {
		case err := <-done:
			t.Fatalf("backup ended (%v) before the first pack was stored\n%s%s", err, stdout.String(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no pack stored within 2 minutes")
		}
	}
	if n := srv.DropConnections(t); n == 0 {
		t.Fatal("no SSH connection to drop")
	}
	err := <-done
	res := result{args: cmd.Args[1:], stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		t.Fatalf("backup across dropped SSH connections failed: %v\n%s", err, res)
	}
	t.Logf("stderr:\n%s", res.stderr)
	// A retry line quotes the transient error, which may itself say
	// "handshake failed: EOF"; only a line starting with the operation
	// means that the retries gave up.
	if gaveUp.MatchString(res.stderr) {
		t.Errorf("an operation gave up:\n%s", res)
	}
	o := oracleFor(t)
	o.MustCheck(repoDir, true)
	target := t.TempDir()
	o.Restore(repoDir, "latest", target)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(target, src, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("restic restored %s differently (err %v)", name, err)
		}
	}
}

// gaveUp matches the message of an operation whose retries gave up, such
// as "Save(<data/5b107a95d8>) failed: ...".
var gaveUp = regexp.MustCompile(`(?m)^\w+\(<[^>]*>\) failed: `)
