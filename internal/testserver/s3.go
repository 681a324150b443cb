package testserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtools"
)

// S3Kind names an S3 server implementation.
type S3Kind string

// The S3 servers the backend is tested against. The tool of each kind is
// tools/<kind>.
const (
	// Versitygw is the Versity S3 gateway with its posix backend: the
	// default server, quick to build.
	Versitygw S3Kind = "versitygw"
	// MinIO is what most self-hosting users run.
	MinIO S3Kind = "minio"
)

// S3Kinds lists every S3 server kind, the default first.
var S3Kinds = []S3Kind{Versitygw, MinIO}

// S3Options selects how S3Server runs the server. The zero value is plain
// HTTP.
type S3Options struct {
	// TLS serves HTTPS with a certificate from a fresh CA (S3.CA).
	TLS bool
	// SecretKey is the root account's secret; empty means a random one.
	// Tests that check secrets never leak put a marker in it.
	SecretKey string
}

// S3 is a running S3 server with one root account.
type S3 struct {
	Kind S3Kind
	// Endpoint is host:port, as minio-go and restic's s3: locations want it.
	Endpoint string
	// Secure is set when the server speaks HTTPS.
	Secure bool
	// AccessKey and SecretKey are the root account's credentials.
	AccessKey, SecretKey string
	// Region is the region the server reports.
	Region string
	// CA issued the server's certificate when Secure.
	CA *CA
	// DataDir is where the server keeps its buckets.
	DataDir string
}

// Repo returns a restic location for prefix in bucket on the server:
// "s3:http://127.0.0.1:PORT/bucket/prefix".
func (s *S3) Repo(bucket, prefix string) string {
	scheme := "http"
	if s.Secure {
		scheme = "https"
	}
	loc := fmt.Sprintf("s3:%s://%s/%s", scheme, s.Endpoint, bucket)
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		loc += "/" + prefix
	}
	return loc
}

// URL returns the server's base URL.
func (s *S3) URL() string {
	if s.Secure {
		return "https://" + s.Endpoint
	}
	return "http://" + s.Endpoint
}

// S3Server starts an S3 server of the given kind with fresh random root
// credentials and returns once it answers. The server and its data go away
// when t ends.
func S3Server(t testing.TB, kind S3Kind, opts S3Options) *S3 {
	t.Helper()
	var bin string
	switch kind {
	case Versitygw, MinIO:
		bin = testtools.Binary(t, string(kind))
	default:
		t.Fatalf("testserver: unknown S3 server kind %q", kind)
	}
	s := &S3{
		Kind:      kind,
		Secure:    opts.TLS,
		AccessKey: "cairn" + randomHex(t, 6),
		SecretKey: opts.SecretKey,
		Region:    "us-east-1",
		DataDir:   dataDir(t, string(kind)),
	}
	if s.SecretKey == "" {
		s.SecretKey = randomHex(t, 20)
	}
	client := &http.Client{Transport: &http.Transport{}}
	var certFile, keyFile string
	if opts.TLS {
		s.CA = NewCA(t)
		certFile, keyFile = s.CA.ServerCert(t)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CA.Pool}}
	}
	t.Cleanup(client.CloseIdleConnections)

	var mk func(port int) ([]string, []string)
	switch kind {
	case Versitygw:
		mk = func(port int) ([]string, []string) {
			args := []string{"--port", hostPort(port), "--region", s.Region}
			if opts.TLS {
				args = append(args, "--cert", certFile, "--key", keyFile)
			}
			args = append(args, "posix", s.DataDir)
			return args, []string{"ROOT_ACCESS_KEY_ID=" + s.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + s.SecretKey}
		}
	case MinIO:
		certsDir := filepath.Join(t.TempDir(), "certs")
		if err := os.MkdirAll(certsDir, 0o700); err != nil {
			t.Fatalf("testserver: %v", err)
		}
		if opts.TLS {
			copyFile(t, certFile, filepath.Join(certsDir, "public.crt"))
			copyFile(t, keyFile, filepath.Join(certsDir, "private.key"))
		}
		mk = func(port int) ([]string, []string) {
			console, err := freePort()
			if err != nil {
				t.Fatalf("testserver: minio: %v", err)
			}
			args := []string{"server", "--quiet", "--address", hostPort(port),
				"--console-address", hostPort(console), "--certs-dir", certsDir, s.DataDir}
			env := []string{
				"MINIO_ROOT_USER=" + s.AccessKey,
				"MINIO_ROOT_PASSWORD=" + s.SecretKey,
				"MINIO_SITE_REGION=" + s.Region,
				"MINIO_BROWSER=off",
				"MINIO_UPDATE=off",
			}
			return args, env
		}
	}
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	port := launch(t, string(kind), bin, mk, func(ctx context.Context, port int) error {
		// An anonymous ListBuckets is refused with 403 once the server
		// checks credentials; MinIO answers 503 until its IAM is up, even
		// after its health endpoint already says "ready".
		return probeStatus(ctx, client, fmt.Sprintf("%s://%s/", scheme, hostPort(port)), http.StatusForbidden)
	})
	s.Endpoint = hostPort(port)
	return s
}

// probeStatus succeeds when url answers with status want.
func probeStatus(ctx context.Context, client *http.Client, url string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testserver: random: %v", err)
	}
	return hex.EncodeToString(b)
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatalf("testserver: %v", err)
	}
}
