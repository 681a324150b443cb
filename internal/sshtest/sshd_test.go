package sshtest_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

func dial(t *testing.T, s *sshtest.Server, auth ssh.AuthMethod) *ssh.Client {
	t.Helper()
	hk, err := knownhosts.New(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{auth},
		HostKeyCallback: hk,
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServer proves the harness: the generated user key logs in, the host
// key matches known_hosts and the fingerprint, internal-sftp works, and
// DropConnections ends the session while the listener stays up.
func TestServer(t *testing.T) {
	s := sshtest.StartWith(t, sshtest.Options{HostKeyTypes: []sshtest.KeyType{sshtest.Ed25519, sshtest.ECDSA}})
	for _, p := range []string{s.UserKey.Path, s.HostKeys[0].Path} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key %s: mode %v, err %v; want 0600", p, fi.Mode(), err)
		}
	}
	kh, err := os.ReadFile(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(kh), "\n"); n != 2 {
		t.Errorf("known_hosts has %d lines, want 2:\n%s", n, kh)
	}

	var presented ssh.PublicKey
	c, err := ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User: s.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(s.UserKey.Signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			presented = key
			return nil
		},
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := ssh.FingerprintSHA256(presented); got != s.HostKeyFingerprint {
		t.Errorf("server presented %s, HostKeyFingerprint is %s", got, s.HostKeyFingerprint)
	}

	client := dial(t, s, ssh.PublicKeys(s.UserKey.Signer))
	sc, err := sftp.NewClient(client)
	if err != nil {
		t.Fatalf("sftp subsystem: %v", err)
	}
	name := filepath.Join(t.TempDir(), "hello")
	f, err := sc.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if data, err := os.ReadFile(name); err != nil || string(data) != "hello" {
		t.Fatalf("file written over SFTP: %q, %v", data, err)
	}

	if n := s.DropConnections(t); n == 0 {
		t.Fatal("DropConnections killed nothing while a session was open")
	}
	done := make(chan error, 1)
	go func() { done <- client.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("client connection survived DropConnections")
	}
	if _, err := sc.Stat(name); err == nil {
		t.Fatal("SFTP request succeeded on a dropped connection")
	}
	// The listener still accepts new connections.
	dial(t, s, ssh.PublicKeys(s.UserKey.Signer))
}

// TestServerRefusesOtherKeys makes sure the harness does not let anything in.
func TestServerRefusesOtherKeys(t *testing.T) {
	s := sshtest.Start(t)
	other := sshtest.GenerateKey(t, t.TempDir(), "other", sshtest.Ed25519)
	hk, err := knownhosts.New(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(other.Signer)},
		HostKeyCallback: hk,
	})
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("login with an unauthorized key: err = %v, want an authentication failure", err)
	}
}

func TestAgent(t *testing.T) {
	s := sshtest.Start(t)
	a := sshtest.StartAgent(t)
	if n := a.Keys(t); n != 0 {
		t.Fatalf("fresh agent holds %d keys", n)
	}
	a.Add(t, s.UserKey)
	if n := a.Keys(t); n != 1 {
		t.Fatalf("agent holds %d keys after Add, want 1", n)
	}
	conn, err := net.Dial("unix", a.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dial(t, s, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
}
