package sshx

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Target names the host to connect to, as the user wrote it (for example in
// a repository URL). Empty fields are filled from ssh_config and defaults.
type Target struct {
	// Host is a host name, an address or a Host alias from ssh_config.
	Host string
	// Port overrides the configured port when non-zero (default 22).
	Port int
	// User overrides the configured user when non-empty (default: the
	// local user name).
	User string
}

func (t Target) String() string {
	s := t.Host
	if strings.Contains(s, ":") {
		s = "[" + s + "]"
	}
	if t.User != "" {
		s = t.User + "@" + s
	}
	if t.Port != 0 {
		s += ":" + strconv.Itoa(t.Port)
	}
	return s
}

// Options adjust how a Dialer resolves and authenticates. The zero value
// behaves like a plain `ssh host`: the user's ssh_config, known_hosts,
// agent and default keys. Options hold no secrets: a password is named by
// the environment variable that holds it.
type Options struct {
	// ConfigFile replaces ~/.ssh/config and /etc/ssh/ssh_config (like
	// ssh -F). It must exist.
	ConfigFile string
	// IgnoreConfig skips every ssh_config file (like ssh -F /dev/null).
	IgnoreConfig bool
	// ConfigOverrides are ssh_config lines ("Keyword=value" or "Keyword
	// value") that take precedence over the files, like ssh -o.
	ConfigOverrides []string

	// IdentityFiles, when set, are the only keys offered: the agent,
	// configured and default identity files are not used. Each must exist
	// and be unencrypted (a Kubernetes Secret mount, for example).
	IdentityFiles []string
	// KnownHostsFiles, when set, replace the known_hosts files from
	// ssh_config and the defaults. Missing files count as empty.
	KnownHostsFiles []string
	// HostKeyFingerprints pins the server's host key: a "SHA256:…"
	// fingerprint as ssh-keygen -lf prints it. When set, known_hosts is not
	// consulted and a key matching none of them is refused.
	HostKeyFingerprints []string
	// PasswordEnv names an environment variable holding the password for
	// password and keyboard-interactive authentication, tried after keys.
	// It is read at every dial and must be set then.
	PasswordEnv string
	// NoAgent disables the ssh-agent even if SSH_AUTH_SOCK is set.
	NoAgent bool

	// ConnectTimeout bounds TCP connect, key exchange and authentication
	// of one dial. Zero: ssh_config's ConnectTimeout, else 30 s.
	ConnectTimeout time.Duration
	// KeepAliveInterval is how often an idle connection sends an OpenSSH
	// keepalive request. Zero: ssh_config's ServerAliveInterval, else 15 s.
	// Negative disables keepalives.
	KeepAliveInterval time.Duration
	// KeepAliveCountMax is how many keepalives in a row may go unanswered
	// before the connection is closed. Zero: ssh_config's
	// ServerAliveCountMax, else 3.
	KeepAliveCountMax int

	// Warnf receives warnings that do not stop the connection (an
	// unsupported ssh_config setting, a key file readable by others). Nil
	// discards them.
	Warnf func(format string, args ...any)
}

const (
	defaultConnectTimeout    = 30 * time.Second
	defaultKeepAliveInterval = 15 * time.Second
	defaultKeepAliveCountMax = 3
)

// ApplyArgs maps the ssh(1) command-line arguments that restic users put in
// "-o sftp.args=…" onto o: -i FILE (adds an IdentityFile, like ssh: the
// agent and configured keys are still offered), -p PORT, -l USER,
// -o KEYWORD=VALUE, -F FILE, -4 and -6. Flags that change nothing for
// an SFTP connection (-C -T -x -a -k -q -v -n -N) are accepted and
// ignored; any other argument is an error, so a setting is never silently
// dropped.
func (o *Options) ApplyArgs(args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			return fmt.Errorf("ssh argument %q: expected an option", a)
		}
		flag := a[1]
		withValue := func() (string, error) {
			if len(a) > 2 {
				return a[2:], nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("ssh argument -%c needs a value", flag)
			}
			i++
			return args[i], nil
		}
		switch flag {
		case 'i', 'p', 'l', 'o', 'F':
			v, err := withValue()
			if err != nil {
				return err
			}
			switch flag {
			case 'i':
				o.ConfigOverrides = append(o.ConfigOverrides, "IdentityFile="+quoteConfigValue(v))
			case 'p':
				if _, err := parsePort(v); err != nil {
					return fmt.Errorf("ssh argument -p: %w", err)
				}
				o.ConfigOverrides = append(o.ConfigOverrides, "Port="+v)
			case 'l':
				o.ConfigOverrides = append(o.ConfigOverrides, "User="+quoteConfigValue(v))
			case 'o':
				if _, _, err := splitConfigLine(v); err != nil {
					return fmt.Errorf("ssh argument -o %q: %w", v, err)
				}
				o.ConfigOverrides = append(o.ConfigOverrides, v)
			case 'F':
				o.ConfigFile = v
			}
		case '4':
			o.ConfigOverrides = append(o.ConfigOverrides, "AddressFamily=inet")
		case '6':
			o.ConfigOverrides = append(o.ConfigOverrides, "AddressFamily=inet6")
		default:
			if strings.Trim(a[1:], "CTxakqvnN") != "" {
				return fmt.Errorf("ssh argument %q is not supported by cairn's built-in SSH client "+
					"(supported: -i -p -l -o -F -4 -6; ignored: -C -T -x -a -k -q -v -n -N)", a)
			}
		}
	}
	return nil
}

// SplitArgs splits a shell-style argument string (as in restic's
// "-o sftp.args='-i key -p 2222'") into words, honouring single and double
// quotes and backslash escapes.
func SplitArgs(s string) ([]string, error) {
	return splitWords(s, false)
}

func quoteConfigValue(v string) string {
	if !strings.ContainsAny(v, " \t\"'\\#") {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return p, nil
}

// Settings are the SSH options restic users pass as "-o sftp.NAME=VALUE",
// as written: the SFTP backend and the sftp:// source take the same ones
// and turn them into Options here, so both authenticate alike.
type Settings struct {
	Key         string // sftp.key: the only identity file offered
	KnownHosts  string // sftp.known-hosts: replaces the known_hosts files
	HostKey     string // sftp.host-key: pinned "SHA256:…" fingerprints, comma-separated
	PasswordEnv string // sftp.password-env: variable holding the password
	Args        string // sftp.args: ssh(1) arguments (see Options.ApplyArgs)
	Warnf       func(format string, args ...any)
}

// Options converts the settings. Only sftp.args can be malformed; the
// error names it.
func (s Settings) Options() (Options, error) {
	opts := Options{PasswordEnv: s.PasswordEnv, Warnf: s.Warnf}
	if s.Args != "" {
		args, err := SplitArgs(s.Args)
		if err != nil {
			return Options{}, fmt.Errorf("sftp.args: %w", err)
		}
		if err := opts.ApplyArgs(args); err != nil {
			return Options{}, fmt.Errorf("sftp.args: %w", err)
		}
	}
	if s.Key != "" {
		opts.IdentityFiles = []string{s.Key}
	}
	if s.KnownHosts != "" {
		opts.KnownHostsFiles = []string{s.KnownHosts}
	}
	if s.HostKey != "" {
		for _, fp := range strings.Split(s.HostKey, ",") {
			opts.HostKeyFingerprints = append(opts.HostKeyFingerprints, strings.TrimSpace(fp))
		}
	}
	return opts, nil
}
