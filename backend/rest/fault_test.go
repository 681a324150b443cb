package rest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/internal/testserver"
)

// openThroughProxy opens a fresh repository on srv through a fault proxy.
// Keep-alives are off so that every request takes a new connection and a
// cut hits exactly the request after CutNextAfter.
func openThroughProxy(t *testing.T, srv *testserver.Rest, repo string) (*Backend, *testserver.FaultProxy) {
	t.Helper()
	p := testserver.NewFaultProxy(t, srv.URL.Host)
	cfg, err := ParseConfig("rest:http://" + p.Addr + "/" + repo + "/")
	if err != nil {
		t.Fatal(err)
	}
	be, err := Open(t.Context(), cfg, &http.Transport{DisableKeepAlives: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	if err := be.Create(t.Context()); err != nil {
		t.Fatal(err)
	}
	return be, p
}

// TestConnectionDropped cuts uploads and downloads mid-transfer: the
// operation fails with an error naming it, nothing partial becomes
// visible, and the next attempt works.
func TestConnectionDropped(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{})
	be, p := openThroughProxy(t, srv, "drop")
	data := backendtest.Random(11, 1<<20)
	h := backendtest.HandleFor(backend.PackFile, data)

	p.CutNextAfter(100 << 10)
	err := be.Save(t.Context(), h, backend.NewByteReader(data, false))
	if err == nil {
		t.Fatal("Save over a connection cut after 100 KiB succeeded")
	}
	if !strings.Contains(err.Error(), "save <data/") || !strings.Contains(err.Error(), p.Addr) {
		t.Errorf("error %q does not name the operation and the location", err)
	}
	if _, err := be.Stat(t.Context(), h); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after a cut upload Stat = %v, want fs.ErrNotExist", err)
	}
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
		t.Fatalf("Save after the cut: %v", err)
	}

	// A download that breaks off after 200 KiB of the answer is an error,
	// and not ErrShortRead: the file is fine, the connection is not.
	p.CutNextDownloadAfter(200 << 10)
	var got int64
	err = be.Load(t.Context(), h, 0, 0, func(rd io.Reader) error {
		n, err := io.Copy(io.Discard, rd)
		got = n
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "load <data/") {
		t.Fatalf("Load over a cut connection = %v (read %d bytes), want an error naming the load", err, got)
	}
	if errors.Is(err, backend.ErrShortRead) || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a broken download claims the file is short or missing: %v", err)
	}
	if got >= int64(len(data)) {
		t.Errorf("read %d bytes through a connection cut after 200 KiB", got)
	}
	// The same for a ranged read, where the expected length is known.
	p.CutNextDownloadAfter(50 << 10)
	err = be.Load(t.Context(), h, 500<<10, 1000, func(rd io.Reader) error { _, err := io.Copy(io.Discard, rd); return err })
	if err == nil || errors.Is(err, backend.ErrShortRead) {
		t.Errorf("ranged Load over a cut connection = %v, want a connection error", err)
	}
	if got, err := backend.LoadAll(t.Context(), be, h); err != nil || len(got) != len(data) {
		t.Fatalf("Load after the cut: %d bytes, %v", len(got), err)
	}
}

// TestServerHangs stalls the server's answers: the caller's deadline ends
// every operation in time.
func TestServerHangs(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{})
	be, p := openThroughProxy(t, srv, "hang")
	data := backendtest.Random(12, 300<<10)
	h := backendtest.HandleFor(backend.IndexFile, data)
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
		t.Fatal(err)
	}
	p.Stall(true)
	ops := map[string]func(ctx context.Context) error{
		"load": func(ctx context.Context) error {
			return be.Load(ctx, h, 0, 0, func(rd io.Reader) error { _, err := io.Copy(io.Discard, rd); return err })
		},
		"stat": func(ctx context.Context) error { _, err := be.Stat(ctx, h); return err },
		"list": func(ctx context.Context) error {
			return be.List(ctx, backend.IndexFile, func(backend.FileInfo) error { return nil })
		},
		"save": func(ctx context.Context) error {
			d := backendtest.Random(13, 1000)
			return be.Save(ctx, backendtest.HandleFor(backend.KeyFile, d), backend.NewByteReader(d, false))
		},
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := op(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s against a hanging server = %v, want context.DeadlineExceeded", name, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%s returned %v after its 500ms deadline", name, d)
			}
		})
	}
	p.Stall(false)
	if _, err := be.Stat(t.Context(), h); err != nil {
		t.Fatalf("Stat after the server recovered: %v", err)
	}
}

// TestRepositoryFull fills a repository up to rest-server's --max-size,
// which refuses further uploads as a full disk would.
func TestRepositoryFull(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{MaxSize: 100 << 10})
	be := createRest(t, srv, "", "", "full")
	small := backendtest.Random(14, 50<<10)
	if err := be.Save(t.Context(), backendtest.HandleFor(backend.PackFile, small), backend.NewByteReader(small, false)); err != nil {
		t.Fatalf("Save below the limit: %v", err)
	}
	big := backendtest.Random(15, 80<<10)
	h := backendtest.HandleFor(backend.PackFile, big)
	err := be.Save(t.Context(), h, backend.NewByteReader(big, false))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusInsufficientStorage || !se.Permanent() {
		t.Fatalf("Save beyond the limit = %v, want a permanent 507", err)
	}
	if !strings.Contains(err.Error(), "out of space") || !strings.Contains(err.Error(), "save <data/") {
		t.Errorf("error %q does not explain the full repository", err)
	}
	if _, err := be.Stat(t.Context(), h); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("refused upload is visible: %v", err)
	}
}
