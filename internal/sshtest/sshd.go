package sshtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/testtools"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Options adjusts the server Start runs. The zero value is a server with one
// ed25519 host key that accepts the generated user key only.
type Options struct {
	// HostKeyTypes lists the host keys to generate, in order; the first is
	// the one HostKeyFingerprint names. Default: ed25519 only.
	HostKeyTypes []KeyType
	// AuthorizedKeys are accepted in addition to the generated user key.
	AuthorizedKeys []ssh.PublicKey
	// ExtraConfig lines ("Keyword value") are added to sshd_config, ahead
	// of the defaults, which they override (for example "LogLevel DEBUG1").
	ExtraConfig []string
}

// Server is a running sshd. All paths are inside the test's temp directory
// and vanish with it.
type Server struct {
	// Host is the loopback address the server listens on ("127.0.0.1").
	Host string
	// Port is the TCP port, chosen free at start.
	Port int
	// User is the login name of the user running the test: the only user
	// this server lets in.
	User string
	// Dir holds the server's keys, configuration and known_hosts file.
	Dir string
	// UserKey is the generated client key that authorized_keys accepts.
	UserKey Key
	// HostKeys are the server's host keys, in Options.HostKeyTypes order.
	HostKeys []Key
	// KnownHosts is a known_hosts file listing every host key of the server
	// under "[127.0.0.1]:<port>".
	KnownHosts string
	// HostKeyFingerprint is the "SHA256:…" fingerprint of HostKeys[0].
	HostKeyFingerprint string

	sshd    string
	cfgPath string
	cmd     *exec.Cmd
	log     *logBuffer
	exited  chan struct{}
}

// Addr returns "host:port" for net.Dial.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// KnownHostsName is the host pattern known_hosts files use for this server
// ("[127.0.0.1]:<port>").
func (s *Server) KnownHostsName() string { return knownhosts.Normalize(s.Addr()) }

// Log returns what sshd logged so far (it logs at VERBOSE level to stderr).
func (s *Server) Log() string { return s.log.String() }

// FindSSHD returns the path of the sshd binary: $CAIRN_SSHD if set, else
// sshd from PATH, /usr/sbin or /usr/local/sbin (root's PATH has sbin, a
// normal user's often does not).
func FindSSHD() (string, error) {
	if p := os.Getenv("CAIRN_SSHD"); p != "" {
		abs, err := checkExecutable(p)
		if err != nil {
			return "", fmt.Errorf("CAIRN_SSHD=%s: %w", p, err)
		}
		return abs, nil
	}
	if p, err := exec.LookPath("sshd"); err == nil {
		return filepath.Abs(p)
	}
	for _, p := range []string{"/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"} {
		if _, err := checkExecutable(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("sshd not found in $CAIRN_SSHD, PATH, /usr/sbin or /usr/local/sbin " +
		"(install it with: apt-get install -y --no-install-recommends openssh-server, or run scripts/setup)")
}

func checkExecutable(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", p)
	}
	return filepath.Abs(p)
}

// Start runs a fresh sshd with default options for the duration of t.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith runs a fresh sshd configured by opts for the duration of t. It
// fails (CI=true) or skips the test when sshd is missing, and fails it when
// sshd is installed but does not start.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	sshd, err := FindSSHD()
	if err != nil {
		testtools.Unavailable(t, "%v", err)
	}
	u, err := user.Current()
	if err != nil {
		testtools.Unavailable(t, "sshd needs a named current user: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd running as root chroots its pre-auth child into this
		// directory and refuses to start without it.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			testtools.Unavailable(t, "sshd as root needs /run/sshd: %v", err)
		}
	}

	s := &Server{Host: "127.0.0.1", User: u.Username, Dir: t.TempDir(), sshd: sshd}
	s.UserKey = GenerateKey(t, s.Dir, "id_user", Ed25519)
	types := opts.HostKeyTypes
	if len(types) == 0 {
		types = []KeyType{Ed25519}
	}
	for _, typ := range types {
		s.HostKeys = append(s.HostKeys, GenerateKey(t, s.Dir, "ssh_host_"+string(typ)+"_key", typ))
	}
	s.HostKeyFingerprint = s.HostKeys[0].Fingerprint()

	var auth bytes.Buffer
	auth.Write(ssh.MarshalAuthorizedKey(s.UserKey.PublicKey()))
	for _, k := range opts.AuthorizedKeys {
		auth.Write(ssh.MarshalAuthorizedKey(k))
	}
	if err := writeFile(filepath.Join(s.Dir, "authorized_keys"), auth.Bytes(), 0o600); err != nil {
		t.Fatalf("sshtest: %v", err)
	}

	// A port picked by the kernel can be taken again before sshd binds it;
	// retry a few times rather than fail the test on that race.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("sshtest: pick a free port: %v", err)
		}
		s.Port = port
		if err := s.writeConfig(opts, u); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		lastErr = s.start()
		if lastErr == nil {
			break
		}
		if !errors.Is(lastErr, errAddrInUse) {
			t.Fatalf("sshtest: %v", lastErr)
		}
	}
	if lastErr != nil {
		t.Fatalf("sshtest: %v", lastErr)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("sshd log (%s):\n%s", s.Addr(), s.Log())
		}
	})

	var kh bytes.Buffer
	for _, k := range s.HostKeys {
		kh.WriteString(knownhosts.Line([]string{s.KnownHostsName()}, k.PublicKey()) + "\n")
	}
	s.KnownHosts = filepath.Join(s.Dir, "known_hosts")
	if err := writeFile(s.KnownHosts, kh.Bytes(), 0o600); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) writeConfig(opts Options, u *user.User) error {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# sshd_config written by cairn's internal/sshtest for one test")
	// sshd keeps the first value of a keyword: the test's lines go first
	// so that they override the defaults below.
	for _, l := range opts.ExtraConfig {
		line("%s", l)
	}
	line("ListenAddress %s", s.Addr())
	for _, k := range s.HostKeys {
		line("HostKey %s", k.Path)
	}
	line("PidFile none")
	line("AuthorizedKeysFile %s", filepath.Join(s.Dir, "authorized_keys"))
	line("AuthenticationMethods publickey")
	line("PubkeyAuthentication yes")
	line("PasswordAuthentication no")
	line("KbdInteractiveAuthentication no")
	line("HostbasedAuthentication no")
	line("UsePAM %s", yesNo(needPAM(u)))
	line("StrictModes no")
	line("PermitRootLogin prohibit-password")
	line("AllowUsers %s", u.Username)
	line("Subsystem sftp internal-sftp")
	line("LogLevel VERBOSE")
	line("UseDNS no")
	line("PrintMotd no")
	line("PermitTTY no")
	line("X11Forwarding no")
	line("AllowTcpForwarding no")
	line("AllowAgentForwarding no")
	line("PermitUserEnvironment no")
	// Tests open many connections and sessions at once.
	line("MaxStartups 64")
	line("MaxSessions 64")
	line("MaxAuthTries 10")
	line("LoginGraceTime 30")
	s.cfgPath = filepath.Join(s.Dir, "sshd_config")
	return writeFile(s.cfgPath, []byte(b.String()), 0o600)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// needPAM reports whether sshd must use PAM to let u in. Without PAM, sshd
// applies its own "account is locked" check: as root it refuses accounts
// whose shadow password starts with "!" (what useradd leaves), and as an
// unprivileged user, unable to read /etc/shadow, it refuses every account.
// PAM's account check accepts both for public key logins.
func needPAM(u *user.User) bool {
	if os.Geteuid() != 0 {
		return true
	}
	data, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return false
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		fields := strings.Split(l, ":")
		if len(fields) > 1 && fields[0] == u.Username {
			return strings.HasPrefix(fields[1], "!")
		}
	}
	return false
}

var errAddrInUse = errors.New("address already in use")

// start launches sshd and waits until it listens, exits, or 20 s pass.
func (s *Server) start() error {
	out, err := exec.Command(s.sshd, "-t", "-f", s.cfgPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -t -f %s rejected the configuration: %v\n%s", s.sshd, s.cfgPath, err, out)
	}
	s.log = &logBuffer{listening: make(chan struct{})}
	cmd := exec.Command(s.sshd, "-D", "-e", "-f", s.cfgPath)
	cmd.Stdin = nil
	cmd.Stdout = s.log
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.sshd, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		_, _ = io.Copy(s.log, stderr)
		_ = cmd.Wait()
		close(s.exited)
	}()

	select {
	case <-s.log.listening:
	case <-s.exited:
		log := s.log.String()
		if strings.Contains(log, "Address already in use") {
			return fmt.Errorf("sshd on %s: %w", s.Addr(), errAddrInUse)
		}
		return fmt.Errorf("sshd exited before listening on %s: %s\n%s", s.Addr(), cmd.ProcessState, log)
	case <-time.After(20 * time.Second):
		s.stop()
		return fmt.Errorf("sshd did not listen on %s within 20s:\n%s", s.Addr(), s.log.String())
	}
	return nil
}

// stop kills sshd and every connection it serves.
func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_, _ = s.killDescendants()
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
}

// DropConnections kills the sshd processes that serve established
// connections, the way a network failure or a server restart would end
// them, and returns how many processes it killed. The listener keeps
// running, so new connections succeed.
func (s *Server) DropConnections(t testing.TB) int {
	t.Helper()
	n, err := s.killDescendants()
	if err != nil {
		t.Fatalf("sshtest: drop connections: %v", err)
	}
	return n
}

// Connections returns how many per-connection sshd processes run now
// (pre-auth and session processes counted once each).
func (s *Server) Connections(t testing.TB) int {
	t.Helper()
	kids, err := children(s.cmd.Process.Pid)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return len(kids)
}

// killDescendants SIGKILLs every descendant of the listener. sshd puts each
// connection in its own session, so a process group kill would miss them;
// the parent links in /proc do not.
func (s *Server) killDescendants() (int, error) {
	var all []int
	queue := []int{s.cmd.Process.Pid}
	for len(queue) > 0 {
		kids, err := children(queue[0])
		if err != nil {
			return 0, err
		}
		queue = append(queue[1:], kids...)
		all = append(all, kids...)
	}
	// Kill leaves first so no process is reparented mid-walk.
	killed := 0
	for i := len(all) - 1; i >= 0; i-- {
		p, err := os.FindProcess(all[i])
		if err != nil {
			continue
		}
		if p.Kill() == nil {
			killed++
		}
	}
	return killed, nil
}

// children lists the PIDs whose parent is pid, from /proc/<pid>/stat.
func children(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var kids []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// The command name in parentheses may contain spaces; the fields
		// after the last ')' are "state ppid …".
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil && ppid == pid {
			kids = append(kids, p)
		}
	}
	return kids, nil
}

// logBuffer collects sshd's log and signals when the listener is up.
type logBuffer struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	partial   []byte
	listening chan struct{}
	once      sync.Once
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.partial = append(l.partial, p...)
	sc := bufio.NewScanner(bytes.NewReader(l.partial))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Server listening on") {
			l.once.Do(func() { close(l.listening) })
		}
	}
	if i := bytes.LastIndexByte(l.partial, '\n'); i >= 0 {
		l.partial = append(l.partial[:0], l.partial[i+1:]...)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
