package sshx_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/sshx"
	"github.com/cairn-backup/cairn/internal/testtools"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// isolate gives the test an empty home directory and no agent, so the
// machine's own ~/.ssh never leaks in.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	return home
}

func target(s *sshtest.Server) sshx.Target {
	return sshx.Target{Host: s.Host, Port: s.Port, User: s.User}
}

// explicit are options that name everything, as a Kubernetes pod would.
func explicit(s *sshtest.Server) sshx.Options {
	return sshx.Options{
		IgnoreConfig:    true,
		IdentityFiles:   []string{s.UserKey.Path},
		KnownHostsFiles: []string{s.KnownHosts},
	}
}

// checkSFTP proves the connection is authenticated and usable.
func checkSFTP(t *testing.T, c *ssh.Client) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer sess.Close()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		t.Fatalf("sftp subsystem: %v", err)
	}
}

func mustDial(t *testing.T, tg sshx.Target, o sshx.Options) *ssh.Client {
	t.Helper()
	c, err := sshx.Dial(t.Context(), tg, o)
	if err != nil {
		t.Fatalf("Dial(%v): %v", tg, err)
	}
	t.Cleanup(func() { c.Close() })
	checkSFTP(t, c)
	return c
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(data))
}

func TestDialExplicitOptions(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	mustDial(t, target(s), explicit(s))
}

func TestUnknownHostKeyRefused(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	empty := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, empty, "")
	o := explicit(s)
	o.KnownHostsFiles = []string{empty}

	_, err := sshx.Dial(t.Context(), target(s), o)
	var unknown *sshx.UnknownHostKeyError
	if !errors.As(err, &unknown) || !errors.Is(err, sshx.ErrHostKey) {
		t.Fatalf("Dial with an empty known_hosts: err = %v, want an UnknownHostKeyError wrapping ErrHostKey", err)
	}
	msg := err.Error()
	wantCmd := fmt.Sprintf("ssh-keyscan -p %d -t ed25519 127.0.0.1 >> %s", s.Port, empty)
	for _, want := range []string{s.HostKeyFingerprint, wantCmd, "[127.0.0.1]:" + fmt.Sprint(s.Port), "never trusts"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}

	// The printed command must really add the key.
	if _, err := exec.LookPath("ssh-keyscan"); err != nil {
		testtools.Unavailable(t, "ssh-keyscan (openssh-client) is needed to run the printed command: %v", err)
	}
	if out, err := exec.Command("sh", "-c", unknown.AddCommand).CombinedOutput(); err != nil {
		t.Fatalf("running %q: %v\n%s", unknown.AddCommand, err, out)
	}
	mustDial(t, target(s), o)
}

func TestChangedHostKeyRefused(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	impostor := sshtest.GenerateKey(t, t.TempDir(), "old_host_key", sshtest.Ed25519)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, kh, "# comment\n"+knownhosts.Line([]string{s.KnownHostsName()}, impostor.PublicKey())+"\n")
	o := explicit(s)
	o.KnownHostsFiles = []string{kh}

	_, err := sshx.Dial(t.Context(), target(s), o)
	var changed *sshx.ChangedHostKeyError
	if !errors.As(err, &changed) || !errors.Is(err, sshx.ErrHostKey) {
		t.Fatalf("Dial with a different known key: err = %v, want a ChangedHostKeyError", err)
	}
	for _, want := range []string{"REMOTE HOST IDENTIFICATION HAS CHANGED", s.HostKeyFingerprint, impostor.Fingerprint(), kh + ":2", "ssh-keygen -R"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestRevokedHostKeyRefused(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	line := knownhosts.Line([]string{s.KnownHostsName()}, s.HostKeys[0].PublicKey())
	kh := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, kh, line+"\n@revoked * "+strings.SplitN(line, " ", 2)[1]+"\n")
	o := explicit(s)
	o.KnownHostsFiles = []string{kh}
	_, err := sshx.Dial(t.Context(), target(s), o)
	var revoked *sshx.RevokedHostKeyError
	if !errors.As(err, &revoked) || revoked.Revoked.Line != 2 {
		t.Fatalf("Dial with a revoked host key: err = %v, want a RevokedHostKeyError for line 2", err)
	}
}

func TestHashedKnownHostsAndBadLines(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	var warnings []string
	kh := filepath.Join(t.TempDir(), "known_hosts")
	hashed := knownhosts.Line([]string{knownhosts.HashHostname(s.KnownHostsName())}, s.HostKeys[0].PublicKey())
	writeFile(t, kh, "somehost ssh-unknown-type AAAAB3NzaC1yc2E=\n"+hashed+"\n")
	o := explicit(s)
	o.KnownHostsFiles = []string{kh}
	o.Warnf = func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }
	mustDial(t, target(s), o)
	if len(warnings) != 1 || !strings.Contains(warnings[0], kh+":1") {
		t.Errorf("warnings = %q, want one naming the unparsable line %s:1", warnings, kh)
	}
}

// TestKnownKeyTypePreferred: x/crypto prefers ECDSA host keys, but a client
// that only knows the server's ed25519 key must still get that one.
func TestKnownKeyTypePreferred(t *testing.T) {
	isolate(t)
	s := sshtest.StartWith(t, sshtest.Options{HostKeyTypes: []sshtest.KeyType{sshtest.Ed25519, sshtest.ECDSA}})
	for i, k := range s.HostKeys {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		writeFile(t, kh, knownhosts.Line([]string{s.KnownHostsName()}, k.PublicKey())+"\n")
		o := explicit(s)
		o.KnownHostsFiles = []string{kh}
		t.Run(fmt.Sprint(k.PublicKey().Type(), i), func(t *testing.T) { mustDial(t, target(s), o) })
	}
}

func TestPinnedFingerprint(t *testing.T) {
	isolate(t)
	s := sshtest.StartWith(t, sshtest.Options{HostKeyTypes: []sshtest.KeyType{sshtest.Ed25519, sshtest.ECDSA}})
	pinned := func(fps ...string) sshx.Options {
		o := explicit(s)
		o.KnownHostsFiles = nil // known_hosts is not needed with a pin
		o.HostKeyFingerprints = fps
		return o
	}
	t.Run("ed25519", func(t *testing.T) { mustDial(t, target(s), pinned(s.HostKeyFingerprint)) })
	t.Run("padded", func(t *testing.T) { mustDial(t, target(s), pinned(s.HostKeyFingerprint+"=")) })
	// The server prefers to present ed25519 first; a pin of its ECDSA key
	// must still be found.
	t.Run("ecdsa", func(t *testing.T) { mustDial(t, target(s), pinned(s.HostKeys[1].Fingerprint())) })
	t.Run("wrong", func(t *testing.T) {
		other := sshtest.GenerateKey(t, t.TempDir(), "other", sshtest.Ed25519)
		_, err := sshx.Dial(t.Context(), target(s), pinned(other.Fingerprint()))
		var mm *sshx.FingerprintMismatchError
		if !errors.As(err, &mm) || !errors.Is(err, sshx.ErrHostKey) {
			t.Fatalf("Dial with a wrong pin: err = %v, want FingerprintMismatchError", err)
		}
		for _, want := range []string{other.Fingerprint(), s.HostKeys[0].Fingerprint(), s.HostKeys[1].Fingerprint()} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not mention %s:\n%v", want, err)
			}
		}
	})
	t.Run("malformed", func(t *testing.T) {
		_, err := sshx.NewDialer(target(s), pinned("MD5:aa:bb"))
		if err == nil || !strings.Contains(err.Error(), "SHA256") {
			t.Fatalf("NewDialer with an MD5 pin: err = %v, want an error asking for SHA256", err)
		}
	})
}

// TestSSHConfigAlias resolves everything from ~/.ssh/config: the alias,
// HostName, Port, User, IdentityFile and UserKnownHostsFile with tokens.
func TestSSHConfigAlias(t *testing.T) {
	home := isolate(t)
	s := sshtest.Start(t)
	copyFile(t, s.UserKey.Path, filepath.Join(home, ".ssh", "keys", "backup_key"))
	copyFile(t, s.KnownHosts, filepath.Join(home, ".ssh", "hosts", fmt.Sprintf("127.0.0.1_%d", s.Port)))
	writeFile(t, filepath.Join(home, ".ssh", "config"), fmt.Sprintf(`# a typical user config
Host other !nas-backup
    HostName 192.0.2.1
    User wrong

Host nas-*
    HostName 127.0.0.1
    Port=%d
    User %s
    IdentityFile ~/.ssh/keys/backup_key
    UserKnownHostsFile "~/.ssh/hosts/%%h_%%p"

Host *
    User wrong-too
    Port 1
`, s.Port, s.User))

	d, err := sshx.NewDialer(sshx.Target{Host: "nas-backup"}, sshx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Host() != "127.0.0.1" || d.Port() != s.Port || d.User() != s.User {
		t.Fatalf("resolved %s, want %s@127.0.0.1:%d", d, s.User, s.Port)
	}
	c, err := d.Dial(t.Context())
	if err != nil {
		t.Fatalf("Dial(nas-backup): %v", err)
	}
	defer c.Close()
	checkSFTP(t, c)

	// An explicit port in the target wins over the config (like ssh -p).
	d, err = sshx.NewDialer(sshx.Target{Host: "nas-backup", Port: 2}, sshx.Options{})
	if err != nil || d.Port() != 2 {
		t.Fatalf("target port: %v, %v", d, err)
	}
}

// TestDefaults uses ~/.ssh/id_ed25519 and ~/.ssh/known_hosts, as ssh would.
func TestDefaults(t *testing.T) {
	home := isolate(t)
	s := sshtest.Start(t)
	copyFile(t, s.UserKey.Path, filepath.Join(home, ".ssh", "id_ed25519"))
	copyFile(t, s.KnownHosts, filepath.Join(home, ".ssh", "known_hosts"))
	mustDial(t, target(s), sshx.Options{})

	// StrictHostKeyChecking=no must not open the door to unknown keys.
	writeFile(t, filepath.Join(home, ".ssh", "known_hosts"), "")
	writeFile(t, filepath.Join(home, ".ssh", "config"), "StrictHostKeyChecking no\n")
	var warned bool
	_, err := sshx.Dial(t.Context(), target(s), sshx.Options{Warnf: func(f string, a ...any) {
		warned = warned || strings.Contains(fmt.Sprintf(f, a...), "StrictHostKeyChecking=no")
	}})
	if !errors.Is(err, sshx.ErrHostKey) {
		t.Fatalf("StrictHostKeyChecking=no with an unknown host: err = %v, want a host key error", err)
	}
	if !warned {
		t.Error("no warning that StrictHostKeyChecking=no is ignored")
	}
}

func TestAgent(t *testing.T) {
	home := isolate(t)
	s := sshtest.Start(t)
	copyFile(t, s.KnownHosts, filepath.Join(home, ".ssh", "known_hosts"))

	_, err := sshx.Dial(t.Context(), target(s), sshx.Options{})
	if err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("Dial without any key: err = %v, want 'no credentials'", err)
	}

	a := sshtest.StartAgent(t)
	a.Add(t, s.UserKey)
	t.Setenv("SSH_AUTH_SOCK", a.Socket)
	mustDial(t, target(s), sshx.Options{})

	_, err = sshx.Dial(t.Context(), target(s), sshx.Options{NoAgent: true})
	if err == nil {
		t.Fatal("Dial with NoAgent succeeded although only the agent holds the key")
	}
}

// TestEncryptedKeyViaAgent: an encrypted key file is skipped (cairn never
// prompts) but its agent copy is used, also under IdentitiesOnly.
func TestEncryptedKeyViaAgent(t *testing.T) {
	home := isolate(t)
	dir := t.TempDir()
	enc := sshtest.GenerateEncryptedKey(t, dir, "id_enc", sshtest.Ed25519, "secret passphrase")
	other := sshtest.GenerateKey(t, dir, "other", sshtest.Ed25519)
	s := sshtest.StartWith(t, sshtest.Options{AuthorizedKeys: []ssh.PublicKey{enc.PublicKey()}})
	copyFile(t, s.KnownHosts, filepath.Join(home, ".ssh", "known_hosts"))
	writeFile(t, filepath.Join(home, ".ssh", "config"), "IdentityFile "+enc.Path+"\nIdentitiesOnly yes\n")

	_, err := sshx.Dial(t.Context(), target(s), sshx.Options{})
	if err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Fatalf("Dial with only an encrypted key file: err = %v, want it to say the key is encrypted", err)
	}

	a := sshtest.StartAgent(t)
	a.Add(t, other) // IdentitiesOnly must keep this one out
	a.Add(t, enc)
	t.Setenv("SSH_AUTH_SOCK", a.Socket)
	mustDial(t, target(s), sshx.Options{})

	// Named explicitly, an encrypted key is an error up front.
	_, err = sshx.NewDialer(target(s), sshx.Options{IdentityFiles: []string{enc.Path}})
	if err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("NewDialer with an explicit encrypted key: err = %v, want a passphrase error", err)
	}
}

func TestAuthFailureNamesWhatWasOffered(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	wrong := sshtest.GenerateKey(t, t.TempDir(), "wrong_key", sshtest.Ed25519)
	o := explicit(s)
	o.IdentityFiles = []string{wrong.Path}
	_, err := sshx.Dial(t.Context(), target(s), o)
	if err == nil || !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), wrong.Path) {
		t.Fatalf("Dial with an unauthorized key: err = %v, want an authentication error naming %s", err, wrong.Path)
	}
	if errors.Is(err, sshx.ErrHostKey) {
		t.Fatal("an authentication failure claims to be a host key error")
	}
}

func TestProxyJumpRefused(t *testing.T) {
	home := isolate(t)
	writeFile(t, filepath.Join(home, ".ssh", "config"), "Host behind\n  ProxyJump bastion\n")
	_, err := sshx.NewDialer(sshx.Target{Host: "behind"}, sshx.Options{})
	if err == nil || !strings.Contains(err.Error(), "proxyjump") {
		t.Fatalf("NewDialer for a ProxyJump host: err = %v, want a clear refusal", err)
	}
}

func TestApplyArgsAgainstServer(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	var o sshx.Options
	args, err := sshx.SplitArgs(fmt.Sprintf("-i %s -o UserKnownHostsFile='%s' -p %d -l %s -C", s.UserKey.Path, s.KnownHosts, s.Port, s.User))
	if err != nil {
		t.Fatal(err)
	}
	if err := o.ApplyArgs(args); err != nil {
		t.Fatal(err)
	}
	mustDial(t, sshx.Target{Host: s.Host}, o)
}

func TestDialHonoursContext(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	// A peer that accepts TCP and then never says a word.
	silent := sshtest.NewProxy(t, s.Addr())
	silent.Freeze()
	tg := sshx.Target{Host: "127.0.0.1", Port: silent.Port(), User: s.User}
	o := explicit(s)
	o.HostKeyFingerprints = []string{s.HostKeyFingerprint}

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := sshx.Dial(ctx, tg, o)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("Dial to a silent peer with a 300ms context: err = %v after %v", err, time.Since(start))
	}

	o.ConnectTimeout = 300 * time.Millisecond
	start = time.Now()
	_, err = sshx.Dial(t.Context(), tg, o)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connect timeout") || time.Since(start) > 5*time.Second {
		t.Fatalf("Dial to a silent peer with ConnectTimeout 300ms: err = %v after %v", err, time.Since(start))
	}

	cctx, ccancel := context.WithCancel(t.Context())
	ccancel()
	if _, err := sshx.Dial(cctx, target(s), explicit(s)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context: err = %v", err)
	}
}

// TestKeepAliveClosesDeadConnection: when the peer stops answering (a
// frozen proxy, like a dropped NAT mapping), the client closes the
// connection instead of hanging.
func TestKeepAliveClosesDeadConnection(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	p := sshtest.NewProxy(t, s.Addr())
	o := explicit(s)
	o.HostKeyFingerprints = []string{s.HostKeyFingerprint}
	o.KeepAliveInterval = 100 * time.Millisecond
	o.KeepAliveCountMax = 3
	c := mustDial(t, sshx.Target{Host: "127.0.0.1", Port: p.Port(), User: s.User}, o)

	// Alive and idle: keepalives are answered, the connection stays.
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
		t.Fatal("an idle, healthy connection was closed")
	case <-time.After(time.Second):
	}
	p.Freeze()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("connection to a frozen peer still open after 10s with 100ms keepalives")
	}
}

// TestDialerConcurrentUse dials many connections from one Dialer at once.
func TestDialerConcurrentUse(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	d, err := sshx.NewDialer(target(s), explicit(s))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			c, err := d.Dial(t.Context())
			if err != nil {
				errs <- err
				return
			}
			c.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
