package sshtest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/testtools"
	"golang.org/x/crypto/ssh/agent"
)

// Agent is a running OpenSSH ssh-agent.
type Agent struct {
	// Socket is the agent's UNIX socket, the value for SSH_AUTH_SOCK.
	Socket string
}

// StartAgent runs `ssh-agent -D -a <socket>` (openssh-client) for the
// duration of t. It fails (CI=true) or skips the test when ssh-agent is
// missing.
func StartAgent(t testing.TB) *Agent {
	t.Helper()
	bin, err := exec.LookPath("ssh-agent")
	if err != nil {
		testtools.Unavailable(t, "ssh-agent not found (apt-get install -y --no-install-recommends openssh-client): %v", err)
	}
	// UNIX socket paths are limited to ~108 bytes; t.TempDir can be longer.
	dir, err := os.MkdirTemp("", "cairn-agent-")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")

	var out bytes.Buffer
	cmd := exec.Command(bin, "-D", "-a", sock)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("sshtest: start ssh-agent: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("sshtest: ssh-agent exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshtest: ssh-agent did not listen on %s within 10s: %v", sock, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &Agent{Socket: sock}
}

// Add loads k into the agent, as ssh-add would.
func (a *Agent) Add(t testing.TB, k Key) {
	t.Helper()
	c, err := net.Dial("unix", a.Socket)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	defer c.Close()
	if err := agent.NewClient(c).Add(agent.AddedKey{PrivateKey: k.private, Comment: "cairn-test"}); err != nil {
		t.Fatalf("sshtest: add %s to ssh-agent: %v", k.Path, err)
	}
}

// Keys returns how many keys the agent holds.
func (a *Agent) Keys(t testing.TB) int {
	t.Helper()
	c, err := net.Dial("unix", a.Socket)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	defer c.Close()
	keys, err := agent.NewClient(c).List()
	if err != nil {
		t.Fatalf("sshtest: list agent keys: %v", err)
	}
	return len(keys)
}
