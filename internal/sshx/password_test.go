package sshx_test

import (
	"net"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/sshtest"
	"github.com/cairn-backup/cairn/internal/sshx"
	"golang.org/x/crypto/ssh"
)

// passwordServer is an x/crypto/ssh server that accepts one password. The
// test sshd cannot check passwords (it has no account with a known one),
// so password authentication is tested against this real SSH server
// implementation instead.
func passwordServer(t *testing.T, password string) (port int, fingerprint string) {
	t.Helper()
	hostKey := sshtest.GenerateKey(t, t.TempDir(), "host", sshtest.Ed25519)
	cfg := &ssh.ServerConfig{
		PasswordCallback: func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if string(pw) == password {
				return nil, nil
			}
			return nil, ssh.ErrNoAuth
		},
	}
	cfg.AddHostKey(hostKey.Signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					ch.Reject(ssh.Prohibited, "test server")
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, hostKey.Fingerprint()
}

func TestPasswordFromEnv(t *testing.T) {
	isolate(t)
	const secret = "correct horse battery staple"
	port, fp := passwordServer(t, secret)
	tg := sshx.Target{Host: "127.0.0.1", Port: port, User: "backup"}
	o := sshx.Options{IgnoreConfig: true, NoAgent: true, HostKeyFingerprints: []string{fp}, PasswordEnv: "CAIRN_TEST_SSH_PASSWORD"}

	if _, err := sshx.NewDialer(tg, o); err == nil || !strings.Contains(err.Error(), "CAIRN_TEST_SSH_PASSWORD") {
		t.Fatalf("NewDialer with the password variable unset: err = %v, want it named", err)
	}

	t.Setenv("CAIRN_TEST_SSH_PASSWORD", secret)
	c, err := sshx.Dial(t.Context(), tg, o)
	if err != nil {
		t.Fatalf("Dial with the right password: %v", err)
	}
	c.Close()

	t.Setenv("CAIRN_TEST_SSH_PASSWORD", "wrong "+secret)
	_, err = sshx.Dial(t.Context(), tg, o)
	if err == nil {
		t.Fatal("Dial with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error reveals the password: %v", err)
	}
	if !strings.Contains(err.Error(), "$CAIRN_TEST_SSH_PASSWORD") {
		t.Errorf("error does not say a password from $CAIRN_TEST_SSH_PASSWORD was offered: %v", err)
	}
}
