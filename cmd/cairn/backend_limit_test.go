package main

import (
	"bytes"
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

// --limit-upload and --limit-download are KiB/s, as in restic: a backup
// of 1 MiB of incompressible data at 256 KiB/s cannot finish in less than
// (1024-64)/256 = 3.75 s (the limiter lets its first 64 KiB through at
// once), and a restore of it at 256 KiB/s neither. Only lower bounds are
// asserted: they are what a limiter guarantees; speed is measured by the
// benchmarks.
func TestBackendLimitUploadDownload(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{})
	loc := srv.Repo("", "", "limited")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+loc)
	r.ok("init")
	src := t.TempDir()
	data := make([]byte, 1<<20)
	fillRandom(data)
	if err := os.WriteFile(filepath.Join(src, "one-mib.bin"), data, 0o600); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	r.ok("--limit-upload", "256", "backup", src)
	if d := time.Since(start); d < 3500*time.Millisecond {
		t.Errorf("backup of 1 MiB with --limit-upload 256 took %v, want ≥ 3.5 s", d)
	} else {
		t.Logf("backup of 1 MiB with --limit-upload 256: %v", d)
	}

	target := t.TempDir()
	start = time.Now()
	r.ok("--limit-download", "256", "--no-cache", "restore", "latest", "--target", target)
	if d := time.Since(start); d < 3500*time.Millisecond {
		t.Errorf("restore of 1 MiB with --limit-download 256 took %v, want ≥ 3.5 s", d)
	} else {
		t.Logf("restore of 1 MiB with --limit-download 256: %v", d)
	}
	got, err := os.ReadFile(filepath.Join(target, src, "one-mib.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("limited restore changed the file (err %v)", err)
	}

	for _, flag := range []string{"--limit-upload", "--limit-download"} {
		if res := r.run(flag, "-1", "snapshots"); res.code != 1 || !strings.Contains(res.stderr, "negative") {
			t.Errorf("%s -1: %s", flag, res)
		}
	}
}

// inFlight is a reverse proxy that records the most requests other than
// lock operations that were in flight at once.
type inFlight struct {
	mu        sync.Mutex
	now, peak int
}

func (f *inFlight) handler(target http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/locks") {
			target.ServeHTTP(w, req)
			return
		}
		f.mu.Lock()
		f.now++
		f.peak = max(f.peak, f.now)
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.now--
			f.mu.Unlock()
		}()
		target.ServeHTTP(w, req)
	})
}

func (f *inFlight) reset() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.peak
	f.peak = 0
	return p
}

// -o rest.connections=N caps the requests cairn has in flight (lock
// refreshes apart, as in restic), while a larger N lets more through.
func TestBackendConnectionsOption(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{})
	counter := &inFlight{}
	proxy := httptest.NewServer(counter.handler(httputil.NewSingleHostReverseProxy(srv.URL)))
	t.Cleanup(proxy.Close)
	loc := "rest:" + proxy.URL + "/conn/"
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+loc)
	r.ok("init")

	// Many 4 MiB packs, uploaded slowly enough (4 MiB/s in all) that they
	// queue up and overlap even when a loaded machine packs slowly.
	src := t.TempDir()
	for i := range 6 {
		data := make([]byte, 4<<20)
		fillRandom(data)
		data[0], data[1] = byte(i), 0xa5
		if err := os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i))), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	counter.reset()
	r.ok("-o", "rest.connections=2", "--pack-size", "4", "--limit-upload", "4096", "backup", src)
	if p := counter.reset(); p > 2 || p < 1 {
		t.Errorf("with rest.connections=2 up to %d requests were in flight", p)
	}
	writeFiles(t, src, map[string]string{"touch": "x"})
	for i := range 6 {
		data := make([]byte, 4<<20)
		fillRandom(data)
		data[0], data[1] = byte(i), 0x5a
		if err := os.WriteFile(filepath.Join(src, "g"+string(rune('a'+i))), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.ok("-o", "rest.connections=8", "--pack-size", "4", "--limit-upload", "4096", "backup", src)
	if p := counter.reset(); p <= 2 {
		t.Errorf("with rest.connections=8 at most %d requests were in flight: the measurement cannot tell", p)
	} else {
		t.Logf("with rest.connections=8, %d requests in flight at most", p)
	}
	oracleFor(t).MustCheck(srv.Repo("", "", "conn"), true)
}
