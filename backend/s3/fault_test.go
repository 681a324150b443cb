package s3

import (
	"bytes"
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
// cut hits exactly the request after CutNext….
func openThroughProxy(t *testing.T, srv *testserver.S3, prefix string, retries uint) (*Backend, *testserver.FaultProxy) {
	t.Helper()
	p := testserver.NewFaultProxy(t, srv.Endpoint)
	cfg := config(t, srv, "faults", prefix)
	cfg.Endpoint = p.Addr
	cfg.MaxRetries = retries
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

// TestConnectionDropped cuts an upload mid-way: minio-go rewinds the body
// and sends it again, so Save succeeds with the right content. Without
// retries the Save fails and nothing is visible.
func TestConnectionDropped(t *testing.T) {
	for _, kind := range testserver.S3Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := testserver.S3Server(t, kind, testserver.S3Options{})

			prefix := unique("drop")
			be, p := openThroughProxy(t, srv, prefix, 0)
			data := backendtest.Random(21, 1<<20)
			h := backendtest.HandleFor(backend.PackFile, data)
			p.CutNextAfter(100 << 10)
			if err := be.Save(t.Context(), h, backend.NewByteReader(data, true)); err != nil {
				t.Fatalf("Save over a connection cut after 100 KiB, with retries: %v", err)
			}
			if got, err := backend.LoadAll(t.Context(), be, h); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("content after the retried upload: %d bytes, %v", len(got), err)
			}

			once, p1 := openThroughProxy(t, srv, prefix, 1)
			other := backendtest.Random(24, 1<<20)
			oh := backendtest.HandleFor(backend.PackFile, other)
			p1.CutNextAfter(100 << 10)
			err := once.Save(t.Context(), oh, backend.NewByteReader(other, false))
			if err == nil || !strings.Contains(err.Error(), "save <data/") {
				t.Fatalf("Save over a cut connection without retries = %v, want an error naming the save", err)
			}
			if _, err := once.Stat(t.Context(), oh); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("after a cut upload Stat = %v, want fs.ErrNotExist", err)
			}

			// A download that breaks off is an error, and not ErrShortRead.
			p1.CutNextDownloadAfter(200 << 10)
			err = once.Load(t.Context(), h, 0, 0, func(rd io.Reader) error { _, err := io.Copy(io.Discard, rd); return err })
			if err == nil || errors.Is(err, backend.ErrShortRead) || errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Load over a cut connection = %v, want a connection error", err)
			}
		})
	}
}

// TestServerHangs stalls the server's answers: the caller's deadline ends
// every operation in time, minio-go's retries included.
func TestServerHangs(t *testing.T) {
	srv := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{})
	be, p := openThroughProxy(t, srv, "hang", 0)
	data := backendtest.Random(22, 300<<10)
	h := backendtest.HandleFor(backend.IndexFile, data)
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, true)); err != nil {
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
			d := backendtest.Random(23, 1000)
			return be.Save(ctx, backendtest.HandleFor(backend.KeyFile, d), backend.NewByteReader(d, true))
		},
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := op(ctx)
			if err == nil {
				t.Fatalf("%s against a hanging server succeeded", name)
			}
			if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
				t.Errorf("%s against a hanging server = %v, want the deadline", name, err)
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
