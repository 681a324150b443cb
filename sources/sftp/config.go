package sftp

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/cairn-backup/cairn/internal/sshx"
)

// DefaultRequestsPerFile is how many 32 KiB read requests one file keeps in
// flight: enough to hide a round trip of a few milliseconds at the speed
// one SSH connection reaches, small enough that eight files read at once
// hold 16 MiB.
const DefaultRequestsPerFile = 64

// Config says which remote paths to back up and how to reach their host.
// Get one from ParseURL and adjust it (the CLI fills the options from
// "-o sftp.NAME=VALUE" through SetOption, with the SFTP backend's names).
// It holds no secret: a password is named by the environment variable that
// holds it.
type Config struct {
	// User, Host and Port say where to connect; empty or zero values come
	// from ~/.ssh/config and the defaults, and Host may be a Host alias
	// from ~/.ssh/config.
	User string
	Host string
	Port int
	// Paths are the absolute remote paths to back up, in order: the
	// snapshot's paths.
	Paths []string

	// Hostname is the snapshot's host name; "" means Host as written (the
	// alias, not what it resolves to), so that snapshots keep their name
	// when the address behind an alias changes.
	Hostname string

	// RequestsPerFile is how many 32 KiB read requests one file keeps in
	// flight (sftp.requests-per-file). Default DefaultRequestsPerFile.
	RequestsPerFile int

	// Key is a private key file to use instead of the agent and the ~/.ssh
	// identities (sftp.key), for example one mounted from a Kubernetes
	// Secret. It must not be passphrase-protected.
	Key string
	// KnownHosts replaces the known_hosts files from ~/.ssh/config and the
	// defaults (sftp.known-hosts).
	KnownHosts string
	// HostKey pins the server's host key by its "SHA256:…" fingerprint
	// (sftp.host-key), several separated by commas; known_hosts is then
	// not consulted.
	HostKey string
	// PasswordEnv names an environment variable holding the SSH password
	// (sftp.password-env).
	PasswordEnv string
	// Args are ssh(1) arguments as restic users write them in
	// "-o sftp.args=…": -i, -p, -l, -o Keyword=value, -F, -4, -6.
	Args string

	// Warnf receives warnings that do not stop the backup (an ssh_config
	// setting cairn ignores, a key file others can read). Nil discards
	// them.
	Warnf func(format string, args ...any) `json:"-"`
}

// ParseURL parses one remote source:
//
//	sftp://[user@]host[:port]/absolute/path
//
// The path is absolute on the remote host (sftp://kvm1/srv/app backs up
// /srv/app) and cleaned; "/" backs up the whole remote file system. IPv6
// addresses go in brackets (sftp://[::1]:2222/srv). Percent-escapes are
// decoded, so names with spaces or odd bytes can be written.
func ParseURL(s string) (Config, error) {
	if !IsURL(s) {
		return Config{}, fmt.Errorf("sftp source %q: want sftp://[user@]host[:port]/path", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("sftp source %q: %w", s, err)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Config{}, fmt.Errorf("sftp source %q: unexpected \"?\" or \"#\" (escape them as %%3F and %%23)", s)
	}
	var cfg Config
	if u.User != nil {
		cfg.User = u.User.Username()
		if _, ok := u.User.Password(); ok {
			return Config{}, fmt.Errorf("sftp source %q: a password in the URL is not supported; use the sftp.password-env option", s)
		}
	}
	cfg.Host = u.Hostname()
	if cfg.Host == "" {
		return Config{}, fmt.Errorf("sftp source %q names no host", s)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Config{}, fmt.Errorf("sftp source %q: invalid port %q", s, p)
		}
		cfg.Port = n
	}
	if u.Path == "" {
		return Config{}, fmt.Errorf("sftp source %q names no path (write sftp://host/ for the whole file system)", s)
	}
	if strings.ContainsRune(u.Path, 0) {
		return Config{}, fmt.Errorf("sftp source %q: the path contains a NUL byte", s)
	}
	cfg.Paths = []string{path.Clean(u.Path)}
	cfg.RequestsPerFile = DefaultRequestsPerFile
	return cfg, nil
}

// IsURL reports whether a backup argument names a remote source rather
// than a local path. A local directory literally called "sftp:" can still
// be backed up as "./sftp:/…".
func IsURL(s string) bool { return strings.HasPrefix(s, "sftp://") }

// SameHost reports whether two configurations reach the same account on
// the same host, so that their paths belong in one snapshot.
func (c Config) SameHost(o Config) bool {
	return c.User == o.User && c.Host == o.Host && c.Port == o.Port
}

// String names the host and paths, in the URL form ParseURL accepts.
func (c Config) String() string {
	host := c.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if c.Port != 0 {
		host += ":" + strconv.Itoa(c.Port)
	}
	u := url.URL{Scheme: "sftp", Host: host}
	if c.User != "" {
		u.User = url.User(c.User)
	}
	if len(c.Paths) == 0 {
		return u.String()
	}
	var b strings.Builder
	for i, p := range c.Paths {
		if i > 0 {
			b.WriteByte(' ')
		}
		u.Path = p
		b.WriteString(u.String())
	}
	return b.String()
}

// Options lists the names SetOption accepts, without the "sftp." prefix:
// the SFTP backend's, minus those about writing.
var Options = []string{"requests-per-file", "key", "known-hosts", "host-key", "password-env", "args"}

// SetOption sets one "-o sftp.NAME=VALUE" option; name may carry the
// "sftp." prefix or not. The backend's sftp.connections and sftp.command
// are accepted and ignored (the source uses one connection and runs no
// external ssh), so one set of options can serve both.
func (c *Config) SetOption(name, value string) error {
	switch strings.TrimPrefix(name, "sftp.") {
	case "requests-per-file":
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > 1024 {
			return fmt.Errorf("sftp.requests-per-file: want a number from 1 to 1024, got %q", value)
		}
		c.RequestsPerFile = n
	case "key":
		c.Key = value
	case "known-hosts":
		c.KnownHosts = value
	case "host-key":
		c.HostKey = value
	case "password-env":
		c.PasswordEnv = value
	case "args":
		c.Args = value
	case "connections", "command":
	default:
		return fmt.Errorf("unknown option sftp.%s (known: sftp.%s)", strings.TrimPrefix(name, "sftp."), strings.Join(Options, ", sftp."))
	}
	return nil
}

// dialer turns the configuration into the shared SSH dialer, exactly as
// the SFTP backend does, so both authenticate and check host keys alike.
func (c Config) dialer() (*sshx.Dialer, error) {
	if c.Host == "" {
		return nil, errors.New("no host given")
	}
	opts, err := sshx.Settings{Key: c.Key, KnownHosts: c.KnownHosts, HostKey: c.HostKey,
		PasswordEnv: c.PasswordEnv, Args: c.Args, Warnf: c.Warnf}.Options()
	if err != nil {
		return nil, err
	}
	return sshx.NewDialer(sshx.Target{Host: c.Host, Port: c.Port, User: c.User}, opts)
}
