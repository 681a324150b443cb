package charttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// cluster is a real kube-apiserver backed by a real etcd, both on
// 127.0.0.1, with no controllers: objects are validated, admitted and
// stored, and nothing runs. Requests authenticate with a static token of a
// system:masters user.
type cluster struct {
	url    string
	token  string
	client *http.Client

	mu        sync.Mutex
	resources map[string]metav1.APIResource // "apiVersion Kind" -> resource
}

// startCluster starts etcd and kube-apiserver for the test and stops them
// when it ends.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	etcdBin := tool(t, "etcd")
	apiserverBin := tool(t, "kube-apiserver")
	dir := t.TempDir()

	etcdClient, etcdPeer := freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + etcdClient
	peerURL := "http://127.0.0.1:" + etcdPeer
	startProcess(t, filepath.Join(dir, "etcd.log"), etcdBin,
		"--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL,
		"--unsafe-no-fsync", "--log-level", "warn")
	waitFor(t, 30*time.Second, filepath.Join(dir, "etcd.log"), func() error {
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), `"health":"true"`) {
			return fmt.Errorf("etcd health: %s", b)
		}
		return nil
	})

	token := randomToken(t)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(token+`,chart-test,chart-test,"system:masters"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeSigningKey(t, filepath.Join(dir, "sa.key"))
	port := freePort(t)
	certDir := filepath.Join(dir, "certs")
	startProcess(t, filepath.Join(dir, "apiserver.log"), apiserverBin,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", port,
		"--cert-dir", certDir,
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--enable-priority-and-fairness=false",
		"--profiling=false")

	c := &cluster{url: "https://127.0.0.1:" + port, token: token, resources: map[string]metav1.APIResource{}}
	waitFor(t, 120*time.Second, filepath.Join(dir, "apiserver.log"), func() error {
		if c.client == nil {
			// The API server writes its self-signed serving certificate
			// before it listens; trust exactly that.
			pemBytes, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemBytes) {
				return fmt.Errorf("no certificate in %s", certDir)
			}
			c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
			}}
		}
		status, body, _, err := c.do(context.Background(), http.MethodGet, "/readyz", nil)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", status, body)
		}
		return nil
	})
	return c
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}

func writeSigningKey(t *testing.T, path string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startProcess runs a server with its output in logPath, and stops it
// (SIGTERM, then SIGKILL) when the test ends.
func startProcess(t *testing.T, logPath, bin string, args ...string) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
}

// waitFor polls ready until it succeeds or the timeout passes; then the
// test fails with the last error and the tail of the server's log.
func waitFor(t *testing.T, timeout time.Duration, logPath string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = ready(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	logText, _ := os.ReadFile(logPath)
	if len(logText) > 3000 {
		logText = logText[len(logText)-3000:]
	}
	t.Fatalf("%s not ready after %v: %v\n%s", filepath.Base(logPath), timeout, err, logText)
}

// do sends one request with the bearer token; body is JSON.
func (c *cluster) do(ctx context.Context, method, path string, body []byte) (status int, respBody []byte, warnings []string, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	respBody, err = io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	return resp.StatusCode, respBody, resp.Header.Values("Warning"), nil
}

// resource finds the REST resource of a kind through the API server's
// discovery document of its group version.
func (c *cluster) resource(ctx context.Context, apiVersion, kind string) (metav1.APIResource, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.resources[apiVersion+" "+kind]; ok {
		return r, nil
	}
	path := "/apis/" + apiVersion
	if apiVersion == "v1" {
		path = "/api/v1"
	}
	status, body, _, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return metav1.APIResource{}, err
	}
	if status != http.StatusOK {
		return metav1.APIResource{}, fmt.Errorf("discovery %s: %d %s", path, status, body)
	}
	var list metav1.APIResourceList
	if err := json.Unmarshal(body, &list); err != nil {
		return metav1.APIResource{}, fmt.Errorf("discovery %s: %w", path, err)
	}
	for _, r := range list.APIResources {
		if !strings.Contains(r.Name, "/") {
			c.resources[apiVersion+" "+r.Kind] = r
		}
	}
	r, ok := c.resources[apiVersion+" "+kind]
	if !ok {
		return r, fmt.Errorf("the API server serves no %s %s", apiVersion, kind)
	}
	return r, nil
}

// create sends a manifest (YAML or JSON) to the API server with strict field
// validation, as `kubectl apply --validate=strict` would; with dryRun the
// server validates and admits it but stores nothing. It returns the
// server's warnings (Pod Security warnings among them).
func (c *cluster) create(ctx context.Context, ns string, manifest []byte, dryRun bool) (warnings []string, err error) {
	body, err := yaml.YAMLToJSON(manifest)
	if err != nil {
		return nil, fmt.Errorf("manifest to JSON: %w", err)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, fmt.Errorf("manifest head: %w", err)
	}
	res, err := c.resource(ctx, head.APIVersion, head.Kind)
	if err != nil {
		return nil, err
	}
	prefix := "/apis/" + head.APIVersion
	if head.APIVersion == "v1" {
		prefix = "/api/v1"
	}
	path := prefix + "/" + res.Name
	if res.Namespaced {
		path = prefix + "/namespaces/" + ns + "/" + res.Name
	}
	path += "?fieldValidation=Strict"
	if dryRun {
		path += "&dryRun=All"
	}
	status, respBody, warnings, err := c.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		var st metav1.Status
		if json.Unmarshal(respBody, &st) == nil && st.Message != "" {
			return warnings, fmt.Errorf("create %s %s: %d %s", head.Kind, head.Metadata.Name, status, st.Message)
		}
		return warnings, fmt.Errorf("create %s %s: %d %s", head.Kind, head.Metadata.Name, status, respBody)
	}
	return warnings, nil
}
