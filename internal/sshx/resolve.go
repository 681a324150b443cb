package sshx

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Dialer connects to one resolved target. It is safe for concurrent use
// and can dial any number of times (one connection per call).
type Dialer struct {
	origHost string
	host     string // the name or address dialled (HostName)
	port     int
	user     string
	network  string // tcp, tcp4 or tcp6

	hostKeys *hostKeyVerifier

	identities     []*identity
	skipped        []string // identity files not offered, with the reason
	identitiesOnly bool
	agentSocket    string
	passwordEnv    string

	connectTimeout time.Duration
	keepAlive      time.Duration
	keepAliveMax   int

	warnf func(string, ...any)
}

// Host returns the host name or address the Dialer connects to.
func (d *Dialer) Host() string { return d.host }

// Port returns the TCP port the Dialer connects to.
func (d *Dialer) Port() int { return d.port }

// User returns the remote user name.
func (d *Dialer) User() string { return d.user }

// String returns "user@host:port" (no secrets).
func (d *Dialer) String() string {
	h := d.host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return fmt.Sprintf("%s@%s:%d", d.user, h, d.port)
}

func (d *Dialer) warn(format string, args ...any) {
	if d.warnf != nil {
		d.warnf(format, args...)
	}
}

// homeDir is $HOME, else the passwd entry's home.
func homeDir() (string, error) {
	if h := os.Getenv("HOME"); h != "" {
		return h, nil
	}
	u, err := user.Current()
	if err != nil || u.HomeDir == "" {
		return "", fmt.Errorf("cannot find the home directory: HOME is not set and %v", err)
	}
	return u.HomeDir, nil
}

// localUserName is $USER, else the passwd entry's name, else the UID.
func localUserName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Getuid())
}

// NewDialer resolves t with o (see the package documentation for the
// order of precedence), reads the key and known_hosts files once and
// returns a Dialer for repeated connections. Errors name the file or
// setting at fault.
func NewDialer(t Target, o Options) (*Dialer, error) {
	if t.Host == "" {
		return nil, errors.New("ssh: no host given")
	}
	if t.Port < 0 || t.Port > 65535 {
		return nil, fmt.Errorf("ssh %s: invalid port %d", t.Host, t.Port)
	}
	d := &Dialer{origHost: strings.ToLower(t.Host), warnf: o.Warnf}
	// The home directory is only needed for the defaults: a pod with an
	// explicit key and known_hosts may have neither HOME nor a passwd entry.
	home, err := homeDir()
	needHome := !o.IgnoreConfig && o.ConfigFile == "" || len(o.IdentityFiles) == 0 ||
		len(o.KnownHostsFiles) == 0 && len(o.HostKeyFingerprints) == 0
	if err != nil && needHome {
		return nil, fmt.Errorf("ssh %s: %w", t, err)
	}
	localUser := localUserName()

	lines, err := d.configLines(o, home)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", t, err)
	}
	hc := evaluate(lines, matchState{originalHost: d.origHost, user: t.User, localUser: localUser}, d.warn)

	for _, kw := range []string{"proxyjump", "proxycommand"} {
		if v := hc.get(kw); v != "" && !strings.EqualFold(v, "none") {
			return nil, fmt.Errorf("ssh %s: %s sets %s, which cairn's built-in SSH client does not support; "+
				"connect directly (override with ConfigOverrides \"%s=none\" if the host is reachable)", t, hc.where[kw], kw, kw)
		}
	}

	d.host = t.Host
	if h := hc.get("hostname"); h != "" {
		d.host = expandHostName(h, t.Host)
	}
	switch {
	case t.Port != 0:
		d.port = t.Port
	case hc.get("port") != "":
		if d.port, err = parsePort(hc.get("port")); err != nil {
			return nil, fmt.Errorf("ssh %s: %s: Port: %w", t, hc.where["port"], err)
		}
	default:
		d.port = 22
	}
	d.user = t.User
	if d.user == "" {
		d.user = hc.get("user")
	}
	if d.user == "" {
		d.user = localUser
	}
	switch strings.ToLower(hc.get("addressfamily")) {
	case "inet":
		d.network = "tcp4"
	case "inet6":
		d.network = "tcp6"
	default:
		d.network = "tcp"
	}

	keyAlias := hc.get("hostkeyalias")
	tk := tokens{
		home: home, host: d.host, originalHost: t.Host, port: strconv.Itoa(d.port),
		remoteUser: d.user, localUser: localUser, uid: strconv.Itoa(os.Getuid()), keyAlias: t.Host,
	}
	if keyAlias != "" {
		tk.keyAlias = keyAlias
	}
	tk.localHost, _ = os.Hostname()
	expand := func(kw, v string) (string, error) {
		p, err := expandPath(v, tk)
		if err != nil {
			return "", fmt.Errorf("ssh %s: %s: %s: %w", t, hc.where[kw], kw, err)
		}
		return p, nil
	}

	if err := d.resolveHostKeys(t, o, hc, home, keyAlias, expand); err != nil {
		return nil, err
	}
	if err := d.resolveAuth(t, o, hc, home, expand); err != nil {
		return nil, err
	}
	if err := d.resolveTimings(t, o, hc); err != nil {
		return nil, err
	}
	return d, nil
}

// configLines reads the ssh_config files o selects, with ConfigOverrides
// first so that their values win.
func (d *Dialer) configLines(o Options, home string) ([]configLine, error) {
	var lines []configLine
	for i, ov := range o.ConfigOverrides {
		kw, args, err := splitConfigLine(ov)
		if err != nil {
			return nil, fmt.Errorf("ssh option %q: %w", ov, err)
		}
		if kw == "host" || kw == "match" || kw == "include" {
			return nil, fmt.Errorf("ssh option %q: %s is not allowed as an override", ov, kw)
		}
		lines = append(lines, configLine{keyword: kw, args: args, file: "option", line: i + 1})
	}
	switch {
	case o.IgnoreConfig:
	case o.ConfigFile != "":
		more, err := readConfigFile(o.ConfigFile, filepath.Join(home, ".ssh"), home)
		if err != nil {
			return nil, err
		}
		lines = append(lines, more...)
	default:
		for _, f := range []struct{ path, base string }{
			{filepath.Join(home, ".ssh", "config"), filepath.Join(home, ".ssh")},
			{"/etc/ssh/ssh_config", "/etc/ssh"},
		} {
			if home == "" && f.base != "/etc/ssh" {
				continue
			}
			if !fileExists(f.path) {
				continue
			}
			more, err := readConfigFile(f.path, f.base, home)
			if err != nil {
				return nil, err
			}
			// Every file starts outside any Host block.
			lines = append(lines, configLine{keyword: "host", args: []string{"*"}, file: f.path})
			lines = append(lines, more...)
		}
	}
	return lines, nil
}

func (d *Dialer) resolveHostKeys(t Target, o Options, hc hostConfig, home, keyAlias string, expand func(kw, v string) (string, error)) error {
	v := &hostKeyVerifier{name: d.host, port: d.port, dialHost: d.host}
	if keyAlias != "" {
		v.name = keyAlias
	}
	d.hostKeys = v
	if strict := strings.ToLower(hc.get("stricthostkeychecking")); strict == "no" || strict == "off" || strict == "accept-new" {
		d.warn("ssh %s: ignoring StrictHostKeyChecking=%s from %s: cairn always verifies host keys and never adds them on its own",
			t, strict, hc.where["stricthostkeychecking"])
	}
	for _, fp := range o.HostKeyFingerprints {
		n, err := normalizeFingerprint(fp)
		if err != nil {
			return fmt.Errorf("ssh %s: %w", t, err)
		}
		v.pins = append(v.pins, n)
	}
	if len(v.pins) > 0 {
		return nil
	}

	var user, global []string
	if len(o.KnownHostsFiles) > 0 {
		user = o.KnownHostsFiles
	} else {
		user = []string{"~/.ssh/known_hosts", "~/.ssh/known_hosts2"}
		if a := hc.args("userknownhostsfile"); a != nil {
			user = a
		}
		global = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
		if a := hc.args("globalknownhostsfile"); a != nil {
			global = a
		}
	}
	for _, group := range []struct {
		kw    string
		files []string
	}{{"userknownhostsfile", user}, {"globalknownhostsfile", global}} {
		for _, f := range group.files {
			if strings.EqualFold(f, "none") {
				continue
			}
			p, err := expand(group.kw, f)
			if err != nil {
				return err
			}
			v.files = append(v.files, p)
			if v.addFile == "" && group.kw == "userknownhostsfile" {
				v.addFile = p
			}
		}
	}
	if v.addFile == "" {
		v.addFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	db, names, err := loadKnownHosts(v.files, func(format string, args ...any) { d.warn("ssh %s: "+format, append([]any{t}, args...)...) })
	if err != nil {
		return fmt.Errorf("ssh %s: %w", t, err)
	}
	v.db, v.tempMap = db, names
	return nil
}

func (d *Dialer) resolveAuth(t Target, o Options, hc hostConfig, home string, expand func(kw, v string) (string, error)) error {
	d.passwordEnv = o.PasswordEnv
	if d.passwordEnv != "" {
		if _, ok := os.LookupEnv(d.passwordEnv); !ok {
			return fmt.Errorf("ssh %s: password environment variable %s is not set", t, d.passwordEnv)
		}
	}
	if len(o.IdentityFiles) > 0 {
		for _, p := range o.IdentityFiles {
			id, _, err := loadIdentity(expandTilde(p, home), true, d.warn)
			if err != nil {
				return fmt.Errorf("ssh %s: %w", t, err)
			}
			d.identities = append(d.identities, id)
		}
		return nil
	}

	d.identitiesOnly = strings.EqualFold(hc.get("identitiesonly"), "yes")
	if !o.NoAgent {
		d.agentSocket = os.Getenv("SSH_AUTH_SOCK")
		if a := hc.get("identityagent"); a != "" {
			switch {
			case strings.EqualFold(a, "none"):
				d.agentSocket = ""
			case a == "SSH_AUTH_SOCK":
			case strings.HasPrefix(a, "$") && !strings.HasPrefix(a, "${"):
				d.agentSocket = os.Getenv(a[1:])
			default:
				p, err := expand("identityagent", a)
				if err != nil {
					return err
				}
				d.agentSocket = p
			}
		}
	}

	files := hc.all("identityfile")
	if len(files) == 0 && home != "" {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			files = append(files, filepath.Join(home, ".ssh", n))
		}
	}
	for _, f := range files {
		if strings.EqualFold(f, "none") {
			continue
		}
		p, err := expand("identityfile", f)
		if err != nil {
			return err
		}
		id, skip, err := loadIdentity(p, false, d.warn)
		if err != nil {
			return fmt.Errorf("ssh %s: %w", t, err)
		}
		if skip != "" {
			d.skipped = append(d.skipped, p+": "+skip)
		}
		if id != nil {
			d.identities = append(d.identities, id)
		}
	}
	return nil
}

func (d *Dialer) resolveTimings(t Target, o Options, hc hostConfig) error {
	seconds := func(kw string) (time.Duration, error) {
		v := hc.get(kw)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("ssh %s: %s: %s: invalid number of seconds %q", t, hc.where[kw], kw, v)
		}
		return time.Duration(n) * time.Second, nil
	}
	var err error
	d.connectTimeout = o.ConnectTimeout
	if d.connectTimeout == 0 {
		if d.connectTimeout, err = seconds("connecttimeout"); err != nil {
			return err
		}
	}
	if d.connectTimeout <= 0 {
		d.connectTimeout = defaultConnectTimeout
	}
	d.keepAlive = o.KeepAliveInterval
	if d.keepAlive == 0 {
		if d.keepAlive, err = seconds("serveraliveinterval"); err != nil {
			return err
		}
		if d.keepAlive == 0 {
			// OpenSSH's default is off; a backup must not hang forever on
			// a dead peer, so cairn keeps a default.
			d.keepAlive = defaultKeepAliveInterval
		}
	}
	d.keepAliveMax = o.KeepAliveCountMax
	if d.keepAliveMax == 0 {
		if v := hc.get("serveralivecountmax"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return fmt.Errorf("ssh %s: %s: ServerAliveCountMax: invalid count %q", t, hc.where["serveralivecountmax"], v)
			}
			d.keepAliveMax = n
		}
	}
	if d.keepAliveMax <= 0 {
		d.keepAliveMax = defaultKeepAliveCountMax
	}
	return nil
}
