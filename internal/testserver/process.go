package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds how long a server may take to answer after it was
	// started. MinIO formats its drive on first start, which takes a few
	// seconds on a loaded CI machine.
	startTimeout = 60 * time.Second
	// stopGrace is how long a server gets to exit after SIGTERM.
	stopGrace = 5 * time.Second
	// startAttempts is how often launch tries a new port when a server dies
	// before answering: another process may grab the port between freePort
	// and the server's bind.
	startAttempts = 3
	// logTailBytes is how much of a server's log a failure message quotes.
	logTailBytes = 3000
)

// process is one running server.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done is closed
}

// startProcess runs bin with args and extra environment variables (on top of
// the test's environment), its output going to a log file in logDir.
func startProcess(name, bin string, args, env []string, logDir string) (*process, error) {
	logFile, err := os.CreateTemp(logDir, name+"-*.log")
	if err != nil {
		return nil, fmt.Errorf("start %s: create log file: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor

	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logFile.Name(), done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGTERM, then SIGKILL after stopGrace.
func (p *process) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail returns the end of the process's log for error messages.
func (p *process) logTail() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log %s: %v)", p.logPath, err)
	}
	s := strings.TrimSpace(string(data))
	if len(s) > logTailBytes {
		s = "…" + s[len(s)-logTailBytes:]
	}
	if s == "" {
		return "(empty log)"
	}
	return s
}

// waitReady polls probe until it succeeds, the process exits or
// startTimeout passes.
func (p *process) waitReady(probe func(ctx context.Context) error) error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		if p.exited() {
			return fmt.Errorf("%s exited before it answered (%v); log:\n%s", p.name, p.waitErr, p.logTail())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lastErr = probe(ctx)
		cancel()
		if lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v (last probe: %v); log:\n%s", p.name, startTimeout, lastErr, p.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

// server is a launched server that can be killed and started again on the
// same port with the same arguments.
type server struct {
	name, bin, logDir string
	args, env         []string
	port              int
	probe             func(ctx context.Context, port int) error

	mu sync.Mutex
	p  *process
}

// launch starts a server on a free port and waits until probe succeeds. mk
// returns the arguments and environment for a port. On an early exit (the
// port may have been taken) it tries again with a new port. Any failure is
// fatal for the test: the binary exists, so a server that does not come up
// is a real problem. The server is stopped by t.Cleanup.
func launch(t testing.TB, name, bin string, mk func(port int) (args, env []string), probe func(ctx context.Context, port int) error) (port int) {
	t.Helper()
	return launchServer(t, name, bin, mk, probe).port
}

// launchServer is launch returning the server, for tests that restart it.
func launchServer(t testing.TB, name, bin string, mk func(port int) (args, env []string), probe func(ctx context.Context, port int) error) *server {
	t.Helper()
	logDir := t.TempDir()
	var errs []error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testserver: %s: %v", name, err)
		}
		args, env := mk(port)
		p, err := startProcess(name, bin, args, env, logDir)
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
		err = p.waitReady(func(ctx context.Context) error { return probe(ctx, port) })
		if err == nil {
			s := &server{name: name, bin: bin, logDir: logDir, args: args, env: env, port: port, probe: probe, p: p}
			t.Cleanup(func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				s.p.stop()
				if t.Failed() {
					t.Logf("testserver: log of %s on port %d:\n%s", name, port, s.p.logTail())
				}
			})
			return s
		}
		exitedEarly := p.exited()
		p.stop()
		errs = append(errs, err)
		if !exitedEarly || !strings.Contains(p.logTail(), "address already in use") {
			break
		}
	}
	t.Fatalf("testserver: %s did not start: %v", name, errors.Join(errs...))
	return nil
}

// kill ends the server with SIGKILL, like a crash: open connections break
// and nothing is flushed.
func (s *server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.p.exited() {
		_ = s.p.cmd.Process.Kill()
		<-s.p.done
	}
}

// start runs a killed server again with the same port and arguments and
// waits until it answers.
func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.p.exited() {
		return fmt.Errorf("%s on port %d is still running", s.name, s.port)
	}
	p, err := startProcess(s.name, s.bin, s.args, s.env, s.logDir)
	if err != nil {
		return err
	}
	s.p = p
	return p.waitReady(func(ctx context.Context) error { return s.probe(ctx, s.port) })
}

// dataDir returns a new directory for a server's data below t.TempDir.
func dataDir(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	return dir
}
