package sftp

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// Defaults of the tunable options.
const (
	// DefaultConnections is restic's default for sftp.connections.
	DefaultConnections = 5
	// DefaultRequestsPerFile is how many SFTP read or write requests of 32
	// KiB one file transfer keeps in flight.
	DefaultRequestsPerFile = 64
)

// Config describes an SFTP repository location and how to reach it. The
// zero value is not usable; get one from ParseConfig and adjust the
// options (the CLI fills them from "-o sftp.NAME=VALUE" via SetOption).
// It holds no secret: a password is named by the environment variable that
// holds it.
type Config struct {
	// User, Host and Port come from the repository URL; empty or zero
	// values are taken from ~/.ssh/config and the defaults. Host may be a
	// Host alias from ~/.ssh/config.
	User string
	Host string
	Port int
	// Path is the repository directory as the server sees it: absolute
	// ("/srv/repo") or relative to the login directory ("repo").
	Path string

	// Connections is how many SSH connections the backend opens at most,
	// and what Connections() reports (sftp.connections). Default 5.
	Connections uint
	// RequestsPerFile is how many 32 KiB requests one file transfer keeps
	// in flight (sftp.requests-per-file). Default 64.
	RequestsPerFile int

	// Key is a private key file to use instead of the agent and the
	// ~/.ssh identities (sftp.key), for example a key mounted from a
	// Kubernetes Secret. It must not be passphrase-protected.
	Key string
	// KnownHosts replaces the known_hosts files from ~/.ssh/config and the
	// defaults (sftp.known-hosts).
	KnownHosts string
	// HostKey pins the server's host key by its "SHA256:…" fingerprint
	// (sftp.host-key); several may be given separated by commas. When set,
	// known_hosts is not consulted.
	HostKey string
	// PasswordEnv names an environment variable holding the SSH password
	// (sftp.password-env).
	PasswordEnv string
	// Args are ssh(1) arguments as restic users pass them in
	// "-o sftp.args=…": -i, -p, -l, -o Keyword=value, -F, -4, -6 (see
	// sshx.Options.ApplyArgs).
	Args string
	// Command is restic's sftp.command. cairn has no external ssh process
	// to run, so a non-empty Command is refused by Open with an
	// explanation rather than ignored.
	Command string

	// Warnf receives warnings that do not stop the backend (an ssh_config
	// setting cairn ignores, a key file others can read). Nil discards them.
	Warnf func(format string, args ...any) `json:"-"`
}

// ParseConfig parses a repository location in restic's syntax:
//
//	sftp:user@host:/abs/path     path taken literally (absolute)
//	sftp:host:relative/path      relative to the login directory
//	sftp:user@[::1]:/path        IPv6 address in brackets
//	sftp://user@host:2222//abs   URL form: the first "/" after the host
//	sftp://host/relative         separates, so "//abs" is absolute
//
// The path is cleaned; a path starting with "~" is refused, since SFTP
// servers do not expand it (use a relative path for the home directory).
func ParseConfig(s string) (Config, error) {
	var cfg Config
	var dir string
	switch {
	case strings.HasPrefix(s, "sftp://"):
		u, err := url.Parse(s)
		if err != nil {
			return Config{}, fmt.Errorf("sftp: invalid location %q: %w", s, err)
		}
		if u.User != nil {
			cfg.User = u.User.Username()
			if _, hasPassword := u.User.Password(); hasPassword {
				return Config{}, errors.New("sftp: a password in the location is not supported; use the sftp.password-env option")
			}
		}
		cfg.Host = u.Hostname()
		if p := u.Port(); p != "" {
			if cfg.Port, err = parsePort(p); err != nil {
				return Config{}, fmt.Errorf("sftp: location %q: %w", s, err)
			}
		}
		if u.Path == "" || u.Path == "/" {
			return Config{}, fmt.Errorf("sftp: location %q names no directory", s)
		}
		dir = u.Path[1:]
	case strings.HasPrefix(s, "sftp:"):
		rest := s[len("sftp:"):]
		// The user may contain "@" (user@domain@host): the host starts
		// after the last "@" before the host/path colon.
		at := -1
		for i := 0; i < len(rest); i++ {
			if rest[i] == '@' {
				at = i
			}
			if rest[i] == ':' || rest[i] == '[' {
				break
			}
		}
		hostAndPath := rest[at+1:]
		if at >= 0 {
			cfg.User = rest[:at]
		}
		var host string
		if strings.HasPrefix(hostAndPath, "[") {
			end := strings.Index(hostAndPath, "]:")
			if end < 0 {
				return Config{}, fmt.Errorf("sftp: location %q: want [IPv6 address]:path", s)
			}
			host, dir = hostAndPath[1:end], hostAndPath[end+2:]
		} else {
			var ok bool
			host, dir, ok = strings.Cut(hostAndPath, ":")
			if !ok {
				return Config{}, fmt.Errorf("sftp: location %q: want sftp:[user@]host:path", s)
			}
		}
		cfg.Host = host
	default:
		return Config{}, fmt.Errorf("sftp: location %q does not start with \"sftp:\"", s)
	}
	if cfg.Host == "" {
		return Config{}, fmt.Errorf("sftp: location %q names no host", s)
	}
	cfg.Path = path.Clean(dir)
	if strings.HasPrefix(cfg.Path, "~") {
		return Config{}, fmt.Errorf("sftp: location %q: the path starts with \"~\", which SFTP servers do not expand; "+
			"use a path relative to the login directory instead (sftp:host:repo)", s)
	}
	cfg.Connections = DefaultConnections
	cfg.RequestsPerFile = DefaultRequestsPerFile
	return cfg, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return p, nil
}

// String returns the location in a form ParseConfig accepts.
func (c Config) String() string {
	host := c.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	user := ""
	if c.User != "" {
		user = c.User + "@"
	}
	if c.Port != 0 {
		// In the URL form the first "/" separates, so "/abs" becomes "//abs".
		return fmt.Sprintf("sftp://%s%s:%d/%s", user, host, c.Port, c.Path)
	}
	return fmt.Sprintf("sftp:%s%s:%s", user, host, c.Path)
}

// Options lists the names SetOption accepts, without the "sftp." prefix.
var Options = []string{"connections", "requests-per-file", "key", "known-hosts", "host-key", "password-env", "args", "command"}

// SetOption sets one "-o sftp.NAME=VALUE" option; name may carry the
// "sftp." prefix or not.
func (c *Config) SetOption(name, value string) error {
	switch strings.TrimPrefix(name, "sftp.") {
	case "connections":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || n < 1 || n > 128 {
			return fmt.Errorf("sftp.connections: want a number from 1 to 128, got %q", value)
		}
		c.Connections = uint(n)
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
	case "command":
		c.Command = value
	default:
		return fmt.Errorf("unknown option sftp.%s (known: sftp.%s)", strings.TrimPrefix(name, "sftp."), strings.Join(Options, ", sftp."))
	}
	return nil
}
