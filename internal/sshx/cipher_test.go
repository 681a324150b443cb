package sshx

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/sshtest"
)

// TestPreferredCipher reads in sshd's debug log which cipher the client
// negotiated: AES-GCM on CPUs with AES instructions, ChaCha20 otherwise.
func TestPreferredCipher(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	s := sshtest.StartWith(t, sshtest.Options{ExtraConfig: []string{"LogLevel DEBUG1"}})
	c, err := Dial(t.Context(), Target{Host: s.Host, Port: s.Port, User: s.User}, Options{
		IgnoreConfig: true, IdentityFiles: []string{s.UserKey.Path}, KnownHostsFiles: []string{s.KnownHosts},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	want := "cipher: " + preferredCiphers()[0]
	if hasAESHardware() && preferredCiphers()[0] != "aes128-gcm@openssh.com" {
		t.Fatalf("AES hardware present but %s preferred", preferredCiphers()[0])
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.Log(), "client->server "+want) {
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not log %q:\n%s", want, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
