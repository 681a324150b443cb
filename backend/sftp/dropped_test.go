package sftp_test

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cairn-backup/cairn/backend/sftp"
	"github.com/cairn-backup/cairn/internal/sshtest"
)

// droppingServer is an x/crypto/ssh server that accepts any client key,
// confirms the first session channel and then drops the connection
// before answering anything on it: the moment a server restart or a
// dropped link can hit a client that is starting the SFTP subsystem.
func droppingServer(t *testing.T) (port int, fingerprint string) {
	t.Helper()
	hostKey := sshtest.GenerateKey(t, t.TempDir(), "host", sshtest.Ed25519)
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil },
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
				for nc := range chans {
					if ch, _, err := nc.Accept(); err == nil {
						ch.Close()
					}
					return
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, hostKey.Fingerprint()
}

// A connection lost while the SFTP subsystem starts is an error, every
// time. x/crypto/ssh before v0.53.0 could spin forever in
// Channel.SendRequest when the channel closed just before the request (a
// backup across dropped connections hung in CI that way), which no
// timeout of ours could stop.
func TestConnectionDroppedWhileStarting(t *testing.T) {
	isolate(t)
	port, fp := droppingServer(t)
	cfg, err := sftp.ParseConfig(fmt.Sprintf("sftp:backup@127.0.0.1:%s", filepath.Join(t.TempDir(), "repo")))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = port
	cfg.Key = sshtest.GenerateKey(t, t.TempDir(), "user", sshtest.Ed25519).Path
	cfg.HostKey = fp
	cfg.Connections = 1
	sftp.SetStartTimeout(t, 5*time.Second)
	for i := range 50 {
		done := make(chan error, 1)
		go func() {
			be, err := sftp.Open(t.Context(), cfg)
			if err == nil {
				be.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("attempt %d: Open succeeded on a server that drops every connection", i)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("attempt %d: Open hangs on a connection dropped while the SFTP subsystem starts", i)
		}
	}
}
