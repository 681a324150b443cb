package stall_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/internal/stall"
)

const timeout = 300 * time.Millisecond

func client() *http.Client {
	return &http.Client{Transport: stall.RoundTripper(&http.Transport{}, timeout)}
}

func TestStalls(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/no-answer":
			<-release
		case "/half-body":
			w.Header().Set("Content-Length", "2000")
			_, _ = w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
			<-release
		case "/slow-but-steady":
			// 2.5 timeouts in all, but never a pause of more than half.
			for range 10 {
				_, _ = w.Write([]byte("x"))
				w.(http.Flusher).Flush()
				time.Sleep(timeout / 4)
			}
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: handlers return, then Close
	c := client()

	t.Run("no answer", func(t *testing.T) {
		start := time.Now()
		resp, err := c.Get(srv.URL + "/no-answer")
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, stall.ErrStalled) || errors.Is(err, context.Canceled) || backend.IsPermanent(err) {
			t.Fatalf("err = %v, want a transient ErrStalled", err)
		}
		if d := time.Since(start); d < timeout || d > 10*timeout {
			t.Errorf("gave up after %v with a timeout of %v", d, timeout)
		}
	})
	t.Run("half body", func(t *testing.T) {
		resp, err := c.Get(srv.URL + "/half-body")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if n != 1000 || !errors.Is(err, stall.ErrStalled) || backend.IsPermanent(err) {
			t.Fatalf("read %d bytes, err %v; want 1000 and a transient ErrStalled", n, err)
		}
	})
	t.Run("slow but steady", func(t *testing.T) {
		resp, err := c.Get(srv.URL + "/slow-but-steady")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "xxxxxxxxxx" {
			t.Fatalf("a transfer that keeps moving was cut: %q, %v", b, err)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout/3)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/no-answer", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, stall.ErrStalled) {
			t.Fatalf("err = %v, want the caller's deadline", err)
		}
	})
}

// An upload to a server that stops reading: the body cannot be sent, so
// the watchdog ends the request.
func TestStalledUpload(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { conn.Close() }) // accept, never read
		}
	}()
	body := bytes.NewReader(make([]byte, 64<<20))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+l.Addr().String()+"/upload", body)
	start := time.Now()
	resp, err := client().Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, stall.ErrStalled) {
		t.Fatalf("err = %v, want ErrStalled", err)
	}
	if d := time.Since(start); d > 20*timeout {
		t.Errorf("gave up after %v", d)
	}
}
