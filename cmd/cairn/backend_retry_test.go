package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// A server that answers every third upload with 500 Internal Server
// Error: each failed upload is retried, the backup completes, and restic
// finds the repository clean.
func TestBackendRetryServerErrors(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{})
	var mu sync.Mutex
	uploads, failed := 0, 0
	forward := httputil.NewSingleHostReverseProxy(srv.URL)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost && !strings.Contains(req.URL.RawQuery, "create") {
			mu.Lock()
			uploads++
			fail := uploads%3 == 1
			if fail {
				failed++
			}
			mu.Unlock()
			if fail {
				_, _ = io.Copy(io.Discard, req.Body)
				http.Error(w, "injected", http.StatusInternalServerError)
				return
			}
		}
		forward.ServeHTTP(w, req)
	}))
	t.Cleanup(proxy.Close)
	loc := "rest:" + proxy.URL + "/errors/"
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+loc)
	r.ok("init")
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.txt": "one", "b/c.txt": "two", "b/d.txt": strings.Repeat("three", 100000)})
	res := r.ok("backup", src)
	if !strings.Contains(res.stderr, "500 Internal Server Error") || !strings.Contains(res.stderr, "operation successful after 1 retries") {
		t.Errorf("the 500s were not reported as retried:\n%s", res)
	}
	mu.Lock()
	t.Logf("%d of %d uploads answered 500", failed, uploads)
	mu.Unlock()
	r.ok("snapshots")
	oracleFor(t).MustCheck(srv.Repo("", "", "errors"), true)
}

// A permanent fault mid-backup (the server's disk is full): the backup
// fails at once with exit 1 and a message naming the cause, nothing is
// retried, and the repository still passes restic check (no snapshot or
// index refers to a pack that was not stored).
func TestBackendPermanentFaultKeepsRepositoryValid(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{MaxSize: 3 << 20})
	loc := srv.Repo("", "", "full")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+loc)
	r.ok("init")
	small := t.TempDir()
	writeFiles(t, small, map[string]string{"a.txt": "fits"})
	r.ok("backup", small)

	big := t.TempDir()
	data := make([]byte, 8<<20)
	fillRandom(data)
	if err := os.WriteFile(filepath.Join(big, "big.bin"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := r.run("--pack-size", "4", "backup", big)
	if res.code != 1 || !strings.Contains(res.stderr, "out of space") {
		t.Errorf("backup onto a full server: want exit 1 naming the lack of space, got %s", res)
	}
	if strings.Contains(res.stderr, "retrying") || time.Since(start) > time.Minute {
		t.Errorf("a full disk was retried (%v):\n%s", time.Since(start), res)
	}
	var sns []map[string]any
	decode(t, r.ok("snapshots", "--json").stdout, &sns)
	if len(sns) != 1 {
		t.Errorf("%d snapshots after the failed backup, want 1", len(sns))
	}
	// Packs uploaded before the failure stay unreferenced, as after an
	// interrupted restic backup: restic calls that non-critical ("additional
	// files") and finds no error.
	c := oracleFor(t).Check(loc, true)
	if !c.OK() || !strings.Contains(string(c.Stdout), "no errors were found") {
		t.Fatalf("restic check after the failed backup:\n%s", c.Output())
	}
	for _, p := range c.Problems {
		if !strings.Contains(p, "additional files") && !strings.Contains(p, "non-critical") {
			t.Errorf("restic check reports %q", p)
		}
	}
}
