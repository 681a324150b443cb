package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/internal/testserver"
)

// secret carries the suite's marker, so the Secrets subtest can prove it
// never leaks.
const secret = "s3-" + backendtest.PasswordMarker

func TestMain(m *testing.M) {
	// Keep the credential chain on this machine: no developer credentials
	// from the environment or home directory, and the IAM provider asks a
	// closed loopback port instead of the EC2 metadata address.
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_ACCESS_KEY", "AWS_SECRET_KEY", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_ROOT_USER",
		"MINIO_ROOT_PASSWORD", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_DEFAULT_REGION", "AWS_REGION"} {
		os.Unsetenv(v)
	}
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/cairn-test/credentials")
	os.Setenv("MINIO_SHARED_CREDENTIALS_FILE", "/nonexistent/cairn-test/config.json")
	iamEndpoint = "http://127.0.0.1:1"
	os.Exit(m.Run())
}

var counter atomic.Int64

// unique returns a name no other test uses.
func unique(prefix string) string { return fmt.Sprintf("%s%d", prefix, counter.Add(1)) }

// config returns a Config for bucket/prefix on srv with its root keys.
func config(t *testing.T, srv *testserver.S3, bucket, prefix string) Config {
	t.Helper()
	cfg, err := ParseConfig(srv.Repo(bucket, prefix))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	cfg.KeyID, cfg.Secret = srv.AccessKey, srv.SecretKey
	if srv.CA != nil {
		cfg.RootCAFiles = []string{srv.CA.CertFile}
	}
	return cfg
}

// open opens cfg and closes the backend when t ends.
func open(t *testing.T, cfg Config) *Backend {
	t.Helper()
	be, err := Open(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("Open(%v): %v", cfg, err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return be
}

// create opens cfg and creates the repository location.
func create(t *testing.T, cfg Config) *Backend {
	t.Helper()
	be := open(t, cfg)
	if err := be.Create(t.Context()); err != nil {
		t.Fatalf("Create(%v): %v", cfg, err)
	}
	return be
}

func TestConformance(t *testing.T) {
	for _, kind := range testserver.S3Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := testserver.S3Server(t, kind, testserver.S3Options{SecretKey: secret})
			backendtest.Run(t, func(t *testing.T) backend.Backend {
				return create(t, config(t, srv, "conformance", unique("repos/r")))
			})
		})
	}
}

// TestConformanceBucketRoot keeps the repository at the root of a bucket
// of its own, which every subtest creates.
func TestConformanceBucketRoot(t *testing.T) {
	srv := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{SecretKey: secret})
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return create(t, config(t, srv, unique("root"), ""))
	})
}

func TestConformanceTLS(t *testing.T) {
	srv := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{TLS: true, SecretKey: secret})
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return create(t, config(t, srv, "tls", unique("r")))
	})
}

// TestLayout checks that the objects are exactly where restic puts them.
func TestLayout(t *testing.T) {
	srv := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{})
	be := create(t, config(t, srv, "layout", "backups/r1"))
	var want []string
	for _, ft := range []backend.FileType{backend.ConfigFile, backend.KeyFile, backend.LockFile,
		backend.SnapshotFile, backend.IndexFile, backend.PackFile} {
		data := []byte("layout " + ft.String())
		h := backendtest.HandleFor(ft, data)
		if err := be.Save(t.Context(), h, backend.NewByteReader(data, true)); err != nil {
			t.Fatal(err)
		}
		switch ft {
		case backend.ConfigFile:
			want = append(want, "backups/r1/config")
		case backend.PackFile:
			want = append(want, "backups/r1/data/"+h.Name[:2]+"/"+h.Name)
		default:
			want = append(want, "backups/r1/"+ft.Dir()+"/"+h.Name)
		}
	}
	var got []string
	for obj := range be.client.ListObjects(t.Context(), "layout", minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		got = append(got, obj.Key)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("objects in the bucket:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// versitygw's posix backend stores object keys as paths.
	for _, key := range want {
		if _, err := os.Stat(filepath.Join(srv.DataDir, "layout", filepath.FromSlash(key))); err != nil {
			t.Errorf("object %s is not on disk: %v", key, err)
		}
	}
}

// recorder is a RoundTripper that remembers the requests it forwards.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	next http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(req.Context()))
	r.mu.Unlock()
	if r.next == nil {
		return nil, errors.New("recorder: not sending")
	}
	return r.next.RoundTrip(req)
}

func (r *recorder) puts() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*http.Request
	for _, req := range r.reqs {
		// Not the bucket creation (PUT /bucket/), not parts of a multipart upload.
		if req.Method == http.MethodPut && !strings.HasSuffix(req.URL.Path, "/") && req.URL.Query().Get("uploadId") == "" {
			out = append(out, req)
		}
	}
	return out
}

// TestUploadHeaders checks Content-MD5, Content-Type and the storage class
// of uploads as the server receives them.
func TestUploadHeaders(t *testing.T) {
	srv := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{})
	for _, tc := range []struct {
		class      string
		dataPack   bool // whether a data pack carries the class
		treePack   bool
		otherFiles bool
	}{
		{"STANDARD", true, true, true},
		{"GLACIER", true, false, false},
	} {
		t.Run(tc.class, func(t *testing.T) {
			rec := &recorder{next: &http.Transport{}}
			cfg := config(t, srv, "headers", unique("r"))
			cfg.StorageClass = strings.ToLower(tc.class) // case does not matter
			be, err := Open(t.Context(), cfg, rec)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			if err := be.Create(t.Context()); err != nil {
				t.Fatal(err)
			}
			type upload struct {
				h       backend.Handle
				data    []byte
				withMD5 bool
				class   bool
			}
			dataPack := backendtest.Random(1, 3000)
			treePack := backendtest.Random(2, 2000)
			index := backendtest.Random(3, 1000)
			tree := backendtest.HandleFor(backend.PackFile, treePack)
			tree.IsMetadata = true
			uploads := []upload{
				{backendtest.HandleFor(backend.PackFile, dataPack), dataPack, true, tc.dataPack},
				{tree, treePack, false, tc.treePack},
				{backendtest.HandleFor(backend.IndexFile, index), index, false, tc.otherFiles},
			}
			for _, u := range uploads {
				err := be.Save(t.Context(), u.h, backend.NewByteReader(u.data, u.withMD5))
				if err != nil {
					// A server may not know archive classes; the headers are
					// what this test is about.
					t.Logf("Save(%v): %v", u.h, err)
				}
			}
			puts := rec.puts()
			if len(puts) != len(uploads) {
				t.Fatalf("%d PUT requests, want %d", len(puts), len(uploads))
			}
			for i, u := range uploads {
				req := puts[i]
				sum := md5.Sum(u.data)
				if got := req.Header.Get("Content-Md5"); got != base64.StdEncoding.EncodeToString(sum[:]) {
					t.Errorf("%v: Content-MD5 %q, want the MD5 of the data", u.h, got)
				}
				if got := req.Header.Get("Content-Type"); got != "application/octet-stream" {
					t.Errorf("%v: Content-Type %q", u.h, got)
				}
				got := req.Header.Get("X-Amz-Storage-Class")
				if u.class && got != tc.class || !u.class && got != "" {
					t.Errorf("%v (metadata %v): storage class header %q, want it set: %v", u.h, u.h.IsMetadata, got, u.class)
				}
			}
		})
	}
}

// TestMultipart uploads above a lowered threshold in parts.
func TestMultipart(t *testing.T) {
	old := multipartThreshold
	multipartThreshold = 5 << 20 // S3's smallest part size
	t.Cleanup(func() { multipartThreshold = old })
	for _, kind := range testserver.S3Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := testserver.S3Server(t, kind, testserver.S3Options{})
			rec := &recorder{next: &http.Transport{}}
			cfg := config(t, srv, "multipart", "r")
			be, err := Open(t.Context(), cfg, rec)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			if err := be.Create(t.Context()); err != nil {
				t.Fatal(err)
			}
			data := backendtest.Random(9, 12<<20+5)
			h := backendtest.HandleFor(backend.PackFile, data)
			if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
				t.Fatalf("multipart Save: %v", err)
			}
			parts := 0
			for _, req := range rec.reqs {
				if req.Method == http.MethodPut && req.URL.Query().Get("uploadId") != "" {
					parts++
				}
			}
			if parts != 3 {
				t.Errorf("%d part uploads, want 3", parts)
			}
			got, err := backend.LoadAll(t.Context(), be, h)
			if err != nil || string(got) != string(data) {
				t.Fatalf("Load after multipart Save: %v (%d bytes)", err, len(got))
			}
		})
	}
}

// TestBucketLookup checks where requests go for each bucket-lookup style,
// without sending them anywhere.
func TestBucketLookup(t *testing.T) {
	tests := []struct {
		location, lookup, host, path string
	}{
		// minio-go turns the global AWS endpoint into the regional one.
		{"s3:s3.amazonaws.com/bucket/p", "", "bucket.s3.dualstack.us-east-1.amazonaws.com", "/p/config"},
		{"s3:s3.amazonaws.com/bucket/p", "path", "s3.dualstack.us-east-1.amazonaws.com", "/bucket/p/config"},
		{"s3:https://objects.example.net/bucket/p", "auto", "objects.example.net", "/bucket/p/config"},
		{"s3:https://objects.example.net/bucket/p", "dns", "bucket.objects.example.net", "/p/config"},
	}
	for _, tc := range tests {
		t.Run(tc.location+" "+tc.lookup, func(t *testing.T) {
			rec := &recorder{}
			cfg, err := ParseConfig(tc.location)
			if err != nil {
				t.Fatal(err)
			}
			cfg.KeyID, cfg.Secret, cfg.Region, cfg.BucketLookup, cfg.MaxRetries = "k", "s", "us-east-1", tc.lookup, 1
			be, err := Open(t.Context(), cfg, rec)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = be.Stat(t.Context(), backend.Handle{Type: backend.ConfigFile})
			if len(rec.reqs) == 0 {
				t.Fatal("no request")
			}
			req := rec.reqs[0]
			if req.URL.Host != tc.host || req.URL.Path != tc.path {
				t.Errorf("request to %s%s, want %s%s", req.URL.Host, req.URL.Path, tc.host, tc.path)
			}
		})
	}
	if _, err := Open(t.Context(), Config{Endpoint: "h", Bucket: "b", KeyID: "k", Secret: "s", BucketLookup: "virtual"}, nil); err == nil {
		t.Error("Open with bucket-lookup=virtual succeeded")
	}
}

func TestMissingBucket(t *testing.T) {
	srv := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{})
	be := open(t, config(t, srv, "nosuchbucket", "r"))
	_, err := be.Stat(t.Context(), backend.Handle{Type: backend.ConfigFile})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(config) in a missing bucket = %v, want fs.ErrNotExist (no repository)", err)
	}
	err = be.List(t.Context(), backend.SnapshotFile, func(backend.FileInfo) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Errorf("List in a missing bucket = %v, want an error naming the missing bucket", err)
	}
	if err := be.Create(t.Context()); err != nil {
		t.Fatalf("Create of a missing bucket: %v", err)
	}
	if ok, err := be.client.BucketExists(t.Context(), "nosuchbucket"); err != nil || !ok {
		t.Fatalf("bucket after Create: %v, %v", ok, err)
	}
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cfg, err := ParseConfig("s3:http://" + addr + "/bucket/prefix")
	if err != nil {
		t.Fatal(err)
	}
	cfg.KeyID, cfg.Secret, cfg.Region = "key", secret, "us-east-1"
	for _, retries := range []uint{1, 0} {
		t.Run(fmt.Sprintf("retries=%d", retries), func(t *testing.T) {
			cfg.MaxRetries = retries
			be := open(t, cfg)
			start := time.Now()
			_, err := be.Stat(t.Context(), backend.Handle{Type: backend.ConfigFile})
			d := time.Since(start)
			if err == nil {
				t.Fatal("Stat against a closed port succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, "connection refused") || !strings.Contains(msg, addr) || !strings.Contains(msg, "stat config") {
				t.Errorf("error %q should name the operation, the address and the cause", msg)
			}
			if strings.Contains(msg, backendtest.PasswordMarker) {
				t.Errorf("error reveals the secret: %q", msg)
			}
			// minio-go's own retries (10 by default, backing off to 1s)
			// bound the time.
			if limit := 20 * time.Second; d > limit {
				t.Errorf("refused connection took %v to report, want under %v", d, limit)
			}
			t.Logf("reported after %v: %v", d, err)
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		cfg.MaxRetries = 0
		be := open(t, cfg)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		_, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile})
		if !errors.Is(err, context.DeadlineExceeded) && (err == nil || !strings.Contains(err.Error(), "deadline")) {
			t.Fatalf("Stat with a short deadline = %v, want the deadline", err)
		}
	})
}
