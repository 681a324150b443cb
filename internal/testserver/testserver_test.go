package testserver

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// get fetches url with client and returns the status code.
func get(t *testing.T, client *http.Client, url, user, password string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestRestServerAuth(t *testing.T) {
	srv := RestServer(t, RestOptions{Users: map[string]string{"alice": "pw-a"}, PrivateRepos: true})
	client := &http.Client{}
	base := srv.URL.String()
	if got := get(t, client, base+"alice/config", "", ""); got != http.StatusUnauthorized {
		t.Errorf("without credentials: status %d, want 401", got)
	}
	if got := get(t, client, base+"alice/config", "alice", "wrong"); got != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, want 401", got)
	}
	if got := get(t, client, base+"bob/config", "alice", "pw-a"); got != http.StatusUnauthorized {
		t.Errorf("someone else's private repository: status %d, want 401", got)
	}
	if got := get(t, client, base+"alice/config", "alice", "pw-a"); got != http.StatusNotFound {
		t.Errorf("own repository without config: status %d, want 404", got)
	}
	if want := "rest:" + strings.Replace(base, "//", "//alice:pw-a@", 1) + "alice/"; srv.Repo("alice", "pw-a", "alice") != want {
		t.Errorf("Repo = %q, want %q", srv.Repo("alice", "pw-a", "alice"), want)
	}
}

func TestRestServerTLS(t *testing.T) {
	srv := RestServer(t, RestOptions{TLS: true})
	if srv.URL.Scheme != "https" {
		t.Fatalf("URL %s is not https", srv.URL)
	}
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool}}}
	if got := get(t, trusting, srv.URL.String()+"repo/config", "", ""); got != http.StatusNotFound {
		t.Errorf("status %d, want 404", got)
	}
	// The system roots do not know the throwaway CA.
	if _, err := http.Get(srv.URL.String() + "repo/config"); err == nil {
		t.Errorf("a client without the CA connected")
	}
}

func TestRestServerClientCerts(t *testing.T) {
	srv := RestServer(t, RestOptions{ClientCerts: true})
	cert, err := tls.LoadX509KeyPair(srv.ClientCertFile, srv.ClientCertFile)
	if err != nil {
		t.Fatal(err)
	}
	with := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool, Certificates: []tls.Certificate{cert}}}}
	if got := get(t, with, srv.URL.String()+"repo/config", "", ""); got != http.StatusNotFound {
		t.Errorf("with client certificate: status %d, want 404 from rest-server", got)
	}
	without := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool}}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL.String()+"repo/config", nil)
	if resp, err := without.Do(req); err == nil {
		_ = resp.Body.Close()
		t.Errorf("without client certificate: status %d, want a TLS failure", resp.StatusCode)
	}
}

func TestS3Servers(t *testing.T) {
	for _, kind := range S3Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := S3Server(t, kind, S3Options{})
			// Anonymous requests are refused: the server enforces credentials.
			if got := get(t, &http.Client{}, srv.URL()+"/", "", ""); got != http.StatusForbidden {
				t.Errorf("anonymous ListBuckets: status %d, want 403", got)
			}
			if !strings.HasPrefix(srv.Repo("b", "p/q/"), "s3:http://127.0.0.1:") || !strings.HasSuffix(srv.Repo("b", "p/q/"), "/b/p/q") {
				t.Errorf("Repo = %q", srv.Repo("b", "p/q/"))
			}
			if fi, err := os.Stat(srv.DataDir); err != nil || !fi.IsDir() {
				t.Errorf("data directory %s: %v", srv.DataDir, err)
			}
		})
	}
}

func TestS3ServerTLS(t *testing.T) {
	srv := S3Server(t, Versitygw, S3Options{TLS: true})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CA.Pool}}}
	if got := get(t, client, srv.URL()+"/", "", ""); got != http.StatusForbidden {
		t.Errorf("anonymous ListBuckets over TLS: status %d, want 403", got)
	}
}

func TestHtpasswd(t *testing.T) {
	got := string(htpasswdFile(map[string]string{"b": "password", "a": ""}))
	// SHA-1 of "password" and of "", base64.
	want := "a:{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=\nb:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
	if got != want {
		t.Errorf("htpasswd =\n%s\nwant\n%s", got, want)
	}
}

func TestRestServerUnixSocket(t *testing.T) {
	srv := RestServer(t, RestOptions{UnixSocket: true})
	if !strings.HasPrefix(srv.Repo("", "", "r"), "rest:http+unix:///") || !strings.HasSuffix(srv.Repo("", "", "r"), ".sock:/r/") {
		t.Errorf("Repo = %q, want rest:http+unix:///…sock:/r/", srv.Repo("", "", "r"))
	}
}

func TestFaultProxy(t *testing.T) {
	srv := RestServer(t, RestOptions{})
	p := NewFaultProxy(t, srv.URL.Host)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + p.Addr + "/repo/config"
	if got := get(t, client, url, "", ""); got != http.StatusNotFound {
		t.Fatalf("through the proxy: status %d, want rest-server's 404", got)
	}

	p.CutNextAfter(10)
	if resp, err := client.Get(url); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("request through a cut connection succeeded with %s", resp.Status)
	}
	if got := get(t, client, url, "", ""); got != http.StatusNotFound {
		t.Fatalf("after the cut: status %d, want 404", got)
	}

	p.Stall(true)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	start := time.Now()
	if resp, err := client.Do(req); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("request through a stalled proxy succeeded with %s", resp.Status)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("stalled request failed after %v, before its deadline", d)
	}
	p.Stall(false)
	if got := get(t, client, url, "", ""); got != http.StatusNotFound {
		t.Fatalf("after the stall: status %d, want 404", got)
	}
}

func TestRestServerKillAndStart(t *testing.T) {
	srv := RestServer(t, RestOptions{})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	base := srv.URL.String()
	marker := srv.DataDir + "/repo"
	if err := os.MkdirAll(marker, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(marker+"/config", []byte("cfg"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := get(t, client, base+"repo/config", "", ""); got != http.StatusOK {
		t.Fatalf("before the kill: status %d, want 200", got)
	}
	srv.Kill(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"repo/config", nil)
	if resp, err := client.Do(req); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("killed server answered %s", resp.Status)
	}
	srv.Start(t)
	if got := get(t, client, base+"repo/config", "", ""); got != http.StatusOK {
		t.Fatalf("after the restart: status %d, want 200 (same address, same data)", got)
	}
}
