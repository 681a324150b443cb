package sftp_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/sftp"
	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/sshx"
	"golang.org/x/crypto/ssh/knownhosts"
)

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// roundTrip proves a backend works end to end.
func roundTrip(t *testing.T, be backend.Backend) {
	t.Helper()
	h := save(t, be, backend.KeyFile, []byte("round trip"))
	if got := loadAll(t, be, h); string(got) != "round trip" {
		t.Fatalf("Load(%v) = %q", h, got)
	}
}

func TestUnknownHostKeyRefused(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	cfg := config(t, s, t.TempDir())
	cfg.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, cfg.KnownHosts, "")
	_, err := sftp.Create(t.Context(), cfg)
	var unknown *sshx.UnknownHostKeyError
	if !errors.As(err, &unknown) || !errors.Is(err, sshx.ErrHostKey) {
		t.Fatalf("Create with an unknown host key: err = %v, want an UnknownHostKeyError", err)
	}
	for _, want := range []string{"sftp:", s.HostKeyFingerprint, fmt.Sprintf("ssh-keyscan -p %d -t ed25519 127.0.0.1 >> %s", s.Port, cfg.KnownHosts)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if readFile(t, cfg.KnownHosts) != "" {
		t.Error("known_hosts was modified")
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	old := sshtest.GenerateKey(t, t.TempDir(), "old", sshtest.Ed25519)
	cfg := config(t, s, t.TempDir())
	cfg.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, cfg.KnownHosts, knownhosts.Line([]string{s.KnownHostsName()}, old.PublicKey())+"\n")
	_, err := sftp.Open(t.Context(), cfg)
	var changed *sshx.ChangedHostKeyError
	if !errors.As(err, &changed) || !strings.Contains(err.Error(), "REMOTE HOST IDENTIFICATION HAS CHANGED") {
		t.Fatalf("Open with a changed host key: err = %v, want a loud ChangedHostKeyError", err)
	}
}

func TestPinnedHostKey(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	cfg := config(t, s, filepath.Join(t.TempDir(), "repo"))
	cfg.KnownHosts = ""
	if err := cfg.SetOption("sftp.host-key", s.HostKeyFingerprint); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, create(t, cfg))

	other := sshtest.GenerateKey(t, t.TempDir(), "other", sshtest.Ed25519)
	cfg.HostKey = other.Fingerprint()
	_, err := sftp.Open(t.Context(), cfg)
	var mm *sshx.FingerprintMismatchError
	if !errors.As(err, &mm) || !strings.Contains(err.Error(), s.HostKeyFingerprint) {
		t.Fatalf("Open with a wrong pinned fingerprint: err = %v, want a FingerprintMismatchError naming the server's key", err)
	}
}

// TestSSHConfigAlias: "sftp:nas:path" with everything else from
// ~/.ssh/config and ~/.ssh/known_hosts, as an existing restic setup has.
func TestSSHConfigAlias(t *testing.T) {
	home := isolate(t)
	s := sshtest.Start(t)
	writeFile(t, filepath.Join(home, ".ssh", "nas_backup_key"), readFile(t, s.UserKey.Path))
	writeFile(t, filepath.Join(home, ".ssh", "known_hosts"), readFile(t, s.KnownHosts))
	writeFile(t, filepath.Join(home, ".ssh", "config"), fmt.Sprintf(`Host nas
    HostName %s
    Port %d
    User %s
    IdentityFile ~/.ssh/nas_backup_key
    IdentitiesOnly yes
`, s.Host, s.Port, s.User))
	dir := filepath.Join(t.TempDir(), "repo")
	cfg, err := sftp.ParseConfig("sftp:nas:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	be := create(t, cfg)
	roundTrip(t, be)
	if be.Location() != "sftp:nas:"+dir {
		t.Errorf("Location() = %q, want the location as given", be.Location())
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "ff")); err != nil {
		t.Fatalf("repository not created where the alias points: %v", err)
	}
}

func TestAgentAuth(t *testing.T) {
	home := isolate(t)
	s := sshtest.Start(t)
	writeFile(t, filepath.Join(home, ".ssh", "known_hosts"), readFile(t, s.KnownHosts))
	cfg := config(t, s, filepath.Join(t.TempDir(), "repo"))
	cfg.Key, cfg.KnownHosts = "", "" // defaults only: ~/.ssh and the agent

	if _, err := sftp.Create(t.Context(), cfg); err == nil {
		t.Fatal("Create without agent or key succeeded")
	}
	a := sshtest.StartAgent(t)
	a.Add(t, s.UserKey)
	t.Setenv("SSH_AUTH_SOCK", a.Socket)
	roundTrip(t, create(t, cfg))
}

// TestResticArgs: the "-o sftp.args=…" a restic user already has works
// unchanged.
func TestResticArgs(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	cfg, err := sftp.ParseConfig("sftp:" + s.User + "@" + s.Host + ":" + filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	args := fmt.Sprintf("-i %s -o UserKnownHostsFile=%s -p %d -o StrictHostKeyChecking=yes", s.UserKey.Path, s.KnownHosts, s.Port)
	if err := cfg.SetOption("sftp.args", args); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, create(t, cfg))

	cfg.Args = "-J bastion"
	if _, err := sftp.Open(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "-J") {
		t.Fatalf("Open with an unsupported ssh argument: err = %v, want it named", err)
	}
}

func TestWrongKeyRefused(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	cfg := config(t, s, t.TempDir())
	cfg.Key = sshtest.GenerateKey(t, t.TempDir(), "not_authorized", sshtest.Ed25519).Path
	_, err := sftp.Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), cfg.Key) {
		t.Fatalf("Open with an unauthorized key: err = %v, want an authentication error naming the key", err)
	}
}

// TestUnreachable: a refused connection and an unknown host name give
// errors that name the backend, the host and the cause, quickly.
func TestUnreachable(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	refused := config(t, s, "/repo")
	refused.Port = freePort(t)
	unknown := config(t, s, "/repo")
	unknown.Host = "cairn-test-host.invalid"
	for name, tc := range map[string]struct {
		cfg  sftp.Config
		want string
	}{
		"refused": {refused, "connection refused"},
		"unknown": {unknown, "cairn-test-host.invalid"},
	} {
		_, err := sftp.Open(t.Context(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "sftp") {
			t.Errorf("%s: Open = %v, want an error naming sftp and %q", name, err, tc.want)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A server whose sftp subsystem never answers fails the open in bounded
// time with a message that says so, instead of hanging the backup.
func TestSubsystemThatNeverAnswers(t *testing.T) {
	isolate(t)
	s := sshtest.StartWith(t, sshtest.Options{ExtraConfig: []string{"ForceCommand sleep 600"}})
	sftp.SetStartTimeout(t, 2*time.Second)
	cfg := config(t, s, t.TempDir())
	start := time.Now()
	_, err := sftp.Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "did not answer within 2s") {
		t.Fatalf("Open against a silent subsystem: err = %v, want a start timeout", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Open took %v to give up", d)
	}
}
