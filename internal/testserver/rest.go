package testserver

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtools"
)

// RestOptions selects the mode rest-server runs in. The zero value is a
// plain HTTP server without authentication that verifies uploads.
type RestOptions struct {
	// Users maps user names to passwords. They go into an htpasswd file and
	// authentication is on; with no users the server runs --no-auth.
	Users map[string]string
	// AppendOnly runs --append-only: deleting anything but locks is refused.
	AppendOnly bool
	// PrivateRepos runs --private-repos: a user may only use repositories
	// below /<user>/. It needs Users.
	PrivateRepos bool
	// NoVerifyUpload runs --no-verify-upload. By default rest-server refuses
	// a file whose content does not hash to its name, which generic backend
	// tests with made-up names need switched off.
	NoVerifyUpload bool
	// MaxSize runs --max-size: the repository may hold at most this many
	// bytes, and uploads beyond it are refused with 507 Insufficient
	// Storage, as a full disk would refuse them. 0 means no limit.
	MaxSize int64
	// TLS serves HTTPS with a certificate from a fresh CA (Rest.CA).
	TLS bool
	// UnixSocket listens on a Unix socket instead of TCP; Rest.URL is then
	// "http+unix:///path/to.socket:/" as restic writes it. It cannot be
	// combined with TLS or ClientCerts.
	UnixSocket bool
	// ClientCerts serves HTTPS that demands a client certificate issued by
	// Rest.CA; it implies TLS. rest-server cannot check client certificates
	// itself, so a TLS-terminating reverse proxy in the test process
	// fronts it and the URL points at the proxy.
	ClientCerts bool
}

// Rest is a running rest-server.
type Rest struct {
	// URL is the base URL clients use, without credentials and with a
	// trailing slash: http://127.0.0.1:PORT/ or https://127.0.0.1:PORT/.
	URL *url.URL
	// DataDir is the server's --path: repositories appear below it.
	DataDir string
	// CA issued the server's certificate when TLS or ClientCerts is set.
	CA *CA
	// ClientCertFile is a client certificate and key (one PEM file) the
	// server accepts, when ClientCerts is set.
	ClientCertFile string

	srv *server // nil on a Unix socket
}

// Kill ends the server process with SIGKILL, as a crash or a power cut
// would: transfers in flight break off and new connections are refused
// until Start. Data already stored stays in DataDir.
func (r *Rest) Kill(t testing.TB) {
	t.Helper()
	if r.srv == nil {
		t.Fatalf("testserver: Kill needs rest-server on TCP")
	}
	r.srv.kill()
}

// Start starts a killed server again, on the same address with the same
// data and options, and returns once it answers.
func (r *Rest) Start(t testing.TB) {
	t.Helper()
	if r.srv == nil {
		t.Fatalf("testserver: Start needs rest-server on TCP")
	}
	if err := r.srv.start(); err != nil {
		t.Fatalf("testserver: restart rest-server: %v", err)
	}
}

// Repo returns a restic location for repository repo on the server, with
// user and password in the URL when user is not empty:
// "rest:http://user:password@127.0.0.1:PORT/repo/".
func (r *Rest) Repo(user, password, repo string) string {
	u := *r.URL
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	base, _ := strings.CutSuffix(u.Path, "/")
	u.Path = base + "/"
	if repo = strings.Trim(repo, "/"); repo != "" {
		u.Path = base + "/" + repo + "/"
	}
	return "rest:" + u.String()
}

// RestServer starts rest-server in the mode opts selects and returns once it
// answers HTTP requests. The server and its data go away when t ends.
func RestServer(t testing.TB, opts RestOptions) *Rest {
	t.Helper()
	if opts.PrivateRepos && len(opts.Users) == 0 {
		t.Fatalf("testserver: rest-server --private-repos needs users")
	}
	if opts.UnixSocket && (opts.TLS || opts.ClientCerts) {
		t.Fatalf("testserver: rest-server on a Unix socket serves plain HTTP only")
	}
	bin := testtools.Binary(t, "rest-server")
	srv := &Rest{DataDir: dataDir(t, "rest-server")}

	args := []string{"--path", srv.DataDir}
	if len(opts.Users) == 0 {
		args = append(args, "--no-auth")
	} else {
		htpasswd := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(htpasswd, htpasswdFile(opts.Users), 0o600); err != nil {
			t.Fatalf("testserver: write htpasswd: %v", err)
		}
		args = append(args, "--htpasswd-file", htpasswd)
	}
	if opts.AppendOnly {
		args = append(args, "--append-only")
	}
	if opts.PrivateRepos {
		args = append(args, "--private-repos")
	}
	if opts.NoVerifyUpload {
		args = append(args, "--no-verify-upload")
	}
	if opts.MaxSize > 0 {
		args = append(args, "--max-size", strconv.FormatInt(opts.MaxSize, 10))
	}

	var client *http.Client
	tlsDirect := opts.TLS && !opts.ClientCerts
	if opts.TLS || opts.ClientCerts {
		srv.CA = NewCA(t)
	}
	if tlsDirect {
		certFile, keyFile := srv.CA.ServerCert(t)
		args = append(args, "--tls", "--tls-cert", certFile, "--tls-key", keyFile)
		client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool}}}
	} else {
		client = &http.Client{Transport: &http.Transport{}}
	}
	t.Cleanup(client.CloseIdleConnections)

	if opts.UnixSocket {
		// Socket paths are limited to about 100 bytes; t.TempDir can be
		// longer, so the socket goes into a short directory of its own.
		dir, err := os.MkdirTemp("", "cairn-rest")
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		socket := filepath.Join(dir, "rest.sock")
		client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}
		launch(t, "rest-server", bin,
			func(int) ([]string, []string) {
				_ = os.Remove(socket) // left by an attempt that died
				return append(args, "--listen", "unix:"+socket), nil
			},
			func(ctx context.Context, _ int) error { return probeHTTP(ctx, client, "http://localhost/") })
		srv.URL = &url.URL{Scheme: "http+unix", Path: socket + ":/"}
		return srv
	}

	scheme := "http"
	if tlsDirect {
		scheme = "https"
	}
	srv.srv = launchServer(t, "rest-server", bin,
		func(port int) ([]string, []string) {
			return append(args, "--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))), nil
		},
		func(ctx context.Context, port int) error {
			// Any HTTP answer (405 without auth, 401 with) means it serves.
			return probeHTTP(ctx, client, fmt.Sprintf("%s://127.0.0.1:%d/", scheme, port))
		})
	port := srv.srv.port
	srv.URL = &url.URL{Scheme: scheme, Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/"}

	if opts.ClientCerts {
		srv.ClientCertFile = srv.CA.ClientCert(t, "cairn test client")
		srv.URL = clientCertProxy(t, srv.CA, srv.URL)
	}
	return srv
}

// htpasswdFile renders users in the {SHA} htpasswd format rest-server reads
// (weak, but these are throwaway test passwords).
func htpasswdFile(users map[string]string) []byte {
	names := make([]string, 0, len(users))
	for name := range users {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		sum := sha1.Sum([]byte(users[name]))
		fmt.Fprintf(&b, "%s:{SHA}%s\n", name, base64.StdEncoding.EncodeToString(sum[:]))
	}
	return []byte(b.String())
}

// probeHTTP succeeds when url answers with any HTTP status.
func probeHTTP(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.Body.Close()
}

// clientCertProxy serves HTTPS on a free port of 127.0.0.1, demands a client
// certificate issued by ca, and forwards every request to target. It
// returns the proxy's base URL.
func clientCertProxy(t testing.TB, ca *CA, target *url.URL) *url.URL {
	t.Helper()
	certFile, keyFile := ca.ServerCert(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("testserver: load proxy certificate: %v", err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatalf("testserver: listen for client-certificate proxy: %v", err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
	}
	// Failed handshakes are what client-certificate tests provoke; keep them
	// out of the test output.
	server := &http.Server{Handler: proxy, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := server.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("testserver: client-certificate proxy: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = server.Close()
		<-done
	})
	return &url.URL{Scheme: "https", Host: l.Addr().String(), Path: "/"}
}
