package rest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/internal/testserver"
)

// recorder is a RoundTripper that remembers every request it forwards.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	next http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(req.Context()))
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// take returns the requests recorded since the last call.
func (r *recorder) take() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := r.reqs
	r.reqs = nil
	return reqs
}

func describe(reqs []*http.Request) string {
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, "\n  %s %s Range=%q Accept=%q Content-Type=%q", r.Method, r.URL.RequestURI(), r.Header.Get("Range"), r.Header.Get("Accept"), r.Header.Get("Content-Type"))
	}
	return b.String()
}

// TestProtocol checks the requests against spec §1.5 while talking to the
// real rest-server.
func TestProtocol(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{Users: map[string]string{"u": password}})
	rec := &recorder{next: &http.Transport{}}
	cfg, err := ParseConfig(srv.Repo("u", password, "proto"))
	if err != nil {
		t.Fatal(err)
	}
	be, err := Open(t.Context(), cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()

	expect := func(step string, want ...string) []*http.Request {
		t.Helper()
		reqs := rec.take()
		var got []string
		for _, r := range reqs {
			got = append(got, r.Method+" "+r.URL.RequestURI())
			if r.URL.User != nil {
				t.Errorf("%s: request URL %s carries user info", step, r.URL.Redacted())
			}
			if user, pw, ok := r.BasicAuth(); !ok || user != "u" || pw != password {
				t.Errorf("%s: %s %s without the basic auth from the URL", step, r.Method, r.URL.Path)
			}
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/") && r.Header.Get("Range") == "" {
				t.Errorf("%s: GET %s without a Range header", step, r.URL.Path)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: requests%s\nwant\n  %s", step, describe(reqs), strings.Join(want, "\n  "))
		}
		return reqs
	}

	if err := be.Create(t.Context()); err != nil {
		t.Fatal(err)
	}
	reqs := expect("create", "HEAD /proto/config", "POST /proto/?create=true")
	if ct, acc := reqs[1].Header.Get("Content-Type"), reqs[1].Header.Get("Accept"); ct != "binary/octet-stream" || acc != "" {
		t.Errorf("create: Content-Type %q, Accept %q; want binary/octet-stream and none", ct, acc)
	}

	data := backendtest.Random(7, 3000)
	h := backendtest.HandleFor(backend.PackFile, data)
	if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
		t.Fatal(err)
	}
	reqs = expect("save", "POST /proto/data/"+h.Name) // no data/XX level
	if r := reqs[0]; r.Header.Get("Content-Type") != "application/octet-stream" || r.Header.Get("Accept") != ContentTypeV2 || r.ContentLength != 3000 {
		t.Errorf("save: Content-Type %q, Accept %q, Content-Length %d", r.Header.Get("Content-Type"), r.Header.Get("Accept"), r.ContentLength)
	}

	got, err := backend.LoadAll(t.Context(), be, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("LoadAll: %v", err)
	}
	if r := expect("load all", "GET /proto/data/"+h.Name)[0]; r.Header.Get("Range") != "bytes=0-" {
		t.Errorf("whole-file load sent Range %q, want bytes=0-", r.Header.Get("Range"))
	}
	if err := be.Load(t.Context(), h, 5, 3, func(rd io.Reader) error { _, err := io.ReadAll(rd); return err }); err != nil {
		t.Fatal(err)
	}
	if r := expect("load range", "GET /proto/data/"+h.Name)[0]; r.Header.Get("Range") != "bytes=3-7" {
		t.Errorf("ranged load sent Range %q, want bytes=3-7", r.Header.Get("Range"))
	}
	if err := be.Load(t.Context(), h, 0, 100, func(rd io.Reader) error { _, err := io.ReadAll(rd); return err }); err != nil {
		t.Fatal(err)
	}
	if r := expect("load tail", "GET /proto/data/"+h.Name)[0]; r.Header.Get("Range") != "bytes=100-" {
		t.Errorf("tail load sent Range %q, want bytes=100-", r.Header.Get("Range"))
	}

	if fi, err := be.Stat(t.Context(), h); err != nil || fi.Size != 3000 {
		t.Fatalf("Stat = %+v, %v", fi, err)
	}
	expect("stat", "HEAD /proto/data/"+h.Name)

	n := 0
	if err := be.List(t.Context(), backend.PackFile, func(fi backend.FileInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("List: %d files, %v", n, err)
	}
	if r := expect("list", "GET /proto/data/")[0]; r.Header.Get("Accept") != ContentTypeV2 {
		t.Errorf("list sent Accept %q", r.Header.Get("Accept"))
	}

	if err := be.Remove(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	expect("remove", "HEAD /proto/data/"+h.Name, "DELETE /proto/data/"+h.Name)

	if _, err := be.Stat(t.Context(), backend.Handle{Type: backend.ConfigFile}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat(config) = %v", err)
	}
	expect("stat config", "HEAD /proto/config")
}

// v1Server is a REST server that speaks only protocol v1 and ignores Range
// headers, like old or minimal implementations.
type v1Server struct {
	files map[string][]byte // "keys/<id>" → content
	heads []string          // paths HEAD was asked for
	mu    sync.Mutex
}

func (s *v1Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/repo/")
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/"):
		var names []string
		for name := range s.files {
			if dir, file, _ := strings.Cut(name, "/"); dir+"/" == p {
				names = append(names, file)
			}
		}
		if len(names) == 0 {
			http.NotFound(w, r)
			return
		}
		names = append(names, "not-an-id.tmp")
		w.Header().Set("Content-Type", ContentTypeV1)
		fmt.Fprintf(w, `["%s"]`, strings.Join(names, `","`))
	case r.Method == http.MethodHead:
		s.mu.Lock()
		s.heads = append(s.heads, p)
		s.mu.Unlock()
		data, ok := s.files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	case r.Method == http.MethodGet:
		data, ok := s.files[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		_, _ = w.Write(data) // 200 with everything: Range ignored
	default:
		http.Error(w, "unsupported", http.StatusMethodNotAllowed)
	}
}

func TestV1Fallback(t *testing.T) {
	k1 := backendtest.Random(1, 10)
	k2 := backendtest.Random(2, 20)
	h1 := backendtest.HandleFor(backend.KeyFile, k1)
	h2 := backendtest.HandleFor(backend.KeyFile, k2)
	s := &v1Server{files: map[string][]byte{"keys/" + h1.Name: k1, "keys/" + h2.Name: k2}}
	ts := httptest.NewServer(s)
	defer ts.Close()
	cfg, err := ParseConfig("rest:" + ts.URL + "/repo")
	if err != nil {
		t.Fatal(err)
	}
	be, err := Open(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()

	got := map[string]int64{}
	if err := be.List(t.Context(), backend.KeyFile, func(fi backend.FileInfo) error {
		got[fi.Name] = fi.Size
		return nil
	}); err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != 2 || got[h1.Name] != 10 || got[h2.Name] != 20 {
		t.Errorf("List = %v, want both keys with sizes from HEAD", got)
	}
	if len(s.heads) != 2 {
		t.Errorf("HEAD requests %v, want one per valid name", s.heads)
	}
	// 404 on a listing is an empty directory.
	if err := be.List(t.Context(), backend.PackFile, func(fi backend.FileInfo) error {
		return fmt.Errorf("unexpected %v", fi)
	}); err != nil {
		t.Errorf("List of a missing directory: %v", err)
	}

	// The server ignores Range and answers 200 with the whole file: Load
	// must skip to the offset itself and still check the length.
	var part []byte
	if err := be.Load(t.Context(), h2, 5, 7, func(rd io.Reader) error {
		part, err = io.ReadAll(rd)
		return err
	}); err != nil || !bytes.Equal(part, k2[7:12]) {
		t.Errorf("ranged Load from a server ignoring Range = %x, %v; want %x", part, err, k2[7:12])
	}
	if err := be.Load(t.Context(), h2, 0, 15, func(rd io.Reader) error {
		part, err = io.ReadAll(rd)
		return err
	}); err != nil || !bytes.Equal(part, k2[15:]) {
		t.Errorf("tail Load from a server ignoring Range = %x, %v; want %x", part, err, k2[15:])
	}
	for _, r := range []struct {
		length int
		offset int64
	}{{5, 18}, {1, 20}, {0, 21}} {
		err := be.Load(t.Context(), h2, r.length, r.offset, func(rd io.Reader) error { _, err := io.ReadAll(rd); return err })
		if !errors.Is(err, backend.ErrShortRead) {
			t.Errorf("Load(length %d, offset %d) of a 20-byte file = %v, want ErrShortRead", r.length, r.offset, err)
		}
	}
}

// TestMisbehavingServer checks the answers a correct server never gives.
func TestMisbehavingServer(t *testing.T) {
	data := backendtest.Random(3, 100)
	h := backendtest.HandleFor(backend.PackFile, data)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		op      func(be *Backend) error
		check   func(err error) bool
	}{
		{
			name: "short partial content",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 10-19/100")
				w.WriteHeader(http.StatusPartialContent)
				_, _ = w.Write(data[10:15])
			},
			op: func(be *Backend) error {
				return be.Load(t.Context(), h, 10, 10, func(rd io.Reader) error { _, err := io.ReadAll(rd); return err })
			},
			check: func(err error) bool { return errors.Is(err, backend.ErrShortRead) },
		},
		{
			name: "wrong range start",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Range", "bytes 0-9/100")
				w.WriteHeader(http.StatusPartialContent)
				_, _ = w.Write(data[0:10])
			},
			op: func(be *Backend) error {
				return be.Load(t.Context(), h, 10, 10, func(rd io.Reader) error { _, err := io.ReadAll(rd); return err })
			},
			check: func(err error) bool {
				return err != nil && strings.Contains(err.Error(), "starting at byte 0, want 10")
			},
		},
		{
			name: "rclone 404 on list",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Server", "rclone/v1.66")
				http.NotFound(w, r)
			},
			op: func(be *Backend) error {
				return be.List(t.Context(), backend.PackFile, func(backend.FileInfo) error { return nil })
			},
			check: func(err error) bool { return errors.Is(err, fs.ErrNotExist) },
		},
		{
			name: "list is not JSON",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", ContentTypeV2)
				_, _ = w.Write([]byte("<html>"))
			},
			op: func(be *Backend) error {
				return be.List(t.Context(), backend.PackFile, func(backend.FileInfo) error { return nil })
			},
			check: func(err error) bool { return err != nil && strings.Contains(err.Error(), "JSON") },
		},
		{
			name: "server error on save",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "boom", http.StatusInternalServerError)
			},
			op: func(be *Backend) error { return be.Save(t.Context(), h, backend.NewByteReader(data, false)) },
			check: func(err error) bool {
				var se *StatusError
				return errors.As(err, &se) && se.StatusCode == 500 && !se.Permanent()
			},
		},
		{
			name: "insufficient storage",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "full", http.StatusInsufficientStorage)
			},
			op: func(be *Backend) error { return be.Save(t.Context(), h, backend.NewByteReader(data, false)) },
			check: func(err error) bool {
				var se *StatusError
				return errors.As(err, &se) && se.Permanent() && strings.Contains(err.Error(), "out of space")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(tc.handler)
			defer ts.Close()
			cfg, err := ParseConfig("rest:" + ts.URL + "/repo/")
			if err != nil {
				t.Fatal(err)
			}
			be, err := Open(t.Context(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			if err := tc.op(be); !tc.check(err) {
				t.Fatalf("got %v", err)
			}
		})
	}
}
