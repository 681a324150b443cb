package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/testserver"
)

// countPacks returns how many pack files a rest-server holds for repo.
func countPacks(t *testing.T, dataDir string) int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dataDir, "data", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range names {
		if len(filepath.Base(name)) == 64 {
			n++
		}
	}
	return n
}

// A rest-server that crashes in the middle of a backup and comes back a
// few seconds later: cairn retries, reports each retry like restic (with
// the password redacted), the backup completes, and restic finds the
// repository clean and restores the files byte for byte.
func TestBackendRetryServerRestartDuringBackup(t *testing.T) {
	const secret = "Retry-Secret-Pw"
	srv := testserver.RestServer(t, testserver.RestOptions{Users: map[string]string{"alice": secret}})
	loc := srv.Repo("alice", secret, "repo")
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	r.ok("init", "-r", loc)

	src := t.TempDir()
	files := map[string][]byte{}
	for i, name := range []string{"a.bin", "b.bin", "c.bin"} {
		data := make([]byte, 4<<20+i*1000)
		fillRandom(data)
		data[0] = byte(i) // the generator is deterministic: keep the files apart
		files[name] = data
		if err := os.WriteFile(filepath.Join(src, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// 4 MiB packs uploaded at 4 MiB/s: each upload takes about a second,
	// so the crash lands in the middle of one.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := r.command(ctx, "-r", loc, "--pack-size", "4", "--limit-upload", "4096", "backup", src)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	repoDir := filepath.Join(srv.DataDir, "repo")
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
	srv.Kill(t)
	time.Sleep(2500 * time.Millisecond)
	srv.Start(t)

	err := <-done
	res := result{args: cmd.Args[1:], stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		t.Fatalf("backup across a server restart failed: %v\n%s", err, res)
	}
	if !strings.Contains(res.stderr, "returned error, retrying after") {
		t.Errorf("no retry was reported:\n%s", res)
	}
	if !strings.Contains(res.stderr, "operation successful after") {
		t.Errorf("no success after retries was reported:\n%s", res)
	}
	if strings.Contains(res.stdout+res.stderr, secret) {
		t.Errorf("a retry message shows the password:\n%s", res)
	}
	t.Logf("retry messages:\n%s", res.stderr)

	o := oracleFor(t)
	o.MustCheck(loc, true)
	target := t.TempDir()
	o.Restore(loc, "latest", target)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(target, src, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("restic restored %s differently (err %v)", name, err)
		}
	}
}

// A server that stops answering in the middle of a backup: each stuck
// request is given up after --stuck-request-timeout and retried; once the
// server answers again the backup completes and restic finds the
// repository clean.
func TestBackendRetryStuckRequests(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{})
	proxy := testserver.NewFaultProxy(t, srv.URL.Host)
	loc := "rest:http://" + proxy.Addr + "/stuck/"
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+loc)
	r.ok("init")
	src := t.TempDir()
	for i, name := range []string{"a.bin", "b.bin"} {
		data := make([]byte, 4<<20)
		fillRandom(data)
		data[0] = byte(i)
		if err := os.WriteFile(filepath.Join(src, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := r.command(ctx, "--stuck-request-timeout", "1s", "--pack-size", "4", "--limit-upload", "4096", "backup", src)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	proxy.Stall(true)
	time.Sleep(4 * time.Second)
	proxy.Stall(false)
	err := cmd.Wait()
	res := result{args: cmd.Args[1:], stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		t.Fatalf("backup across a stalled server failed: %v\n%s", err, res)
	}
	if !strings.Contains(res.stderr, "request made no progress for 1s") || !strings.Contains(res.stderr, "retrying after") {
		t.Errorf("the stuck requests were not reported as retried:\n%s", res)
	}
	t.Logf("messages:\n%s", res.stderr)
	oracleFor(t).MustCheck(srv.Repo("", "", "stuck"), true)

	if res := r.run("--stuck-request-timeout", "0s", "snapshots"); res.code != 1 || !strings.Contains(res.stderr, "stuck-request-timeout") {
		t.Errorf("a zero timeout: %s", res)
	}
}
