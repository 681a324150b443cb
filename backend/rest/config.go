package rest

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultConnections is the number of concurrent requests a backend reports
// when Config.Connections is zero (restic's default).
const DefaultConnections = 5

// Config is where and how to reach a repository on a REST server. Build it
// with ParseConfig and set the optional fields; the zero value of every
// optional field means the documented default.
type Config struct {
	// URL is the repository's URL. Its path ends with a slash; user and
	// password, when present, are sent as HTTP basic authentication.
	URL url.URL
	// Connections is the number of concurrent requests the backend serves
	// well (restic's -o rest.connections). 0 means DefaultConnections.
	Connections uint
	// RootCAFiles are PEM files of CA certificates to trust instead of the
	// system's roots (restic's --cacert).
	RootCAFiles []string
	// ClientCertFile is a PEM file holding a TLS client certificate and its
	// private key (restic's --tls-client-cert).
	ClientCertFile string
	// StuckRequestTimeout gives up a request that makes no progress for
	// this long, with a transient error a retrying layer acts on (restic's
	// --stuck-request-timeout; -o rest.stuck-request-timeout). 0 means 5
	// minutes.
	StuckRequestTimeout time.Duration

	// socket is the Unix socket path of an http+unix:// location; URL then
	// names http://localhost with the path after the socket.
	socket string
	// display is the location as the user wrote it, password included.
	display url.URL
}

// ParseConfig parses a restic REST location such as
// "rest:https://user:password@host:8000/repo/" with restic's rules: the
// "rest:" prefix is required and a missing trailing slash is added. The
// schemes are http, https and http+unix (a Unix socket, written
// "http+unix:///path/to.socket:/repo/").
func ParseConfig(s string) (Config, error) {
	rest, ok := strings.CutPrefix(s, "rest:")
	if !ok {
		return Config{}, errors.New(`rest: location must start with "rest:"`)
	}
	if !strings.HasSuffix(rest, "/") {
		rest += "/"
	}
	u, err := url.Parse(rest)
	if err != nil {
		// url.Error quotes the input, password included: name the problem
		// without it.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return Config{}, fmt.Errorf("rest: invalid URL in location %s: %v", StripPassword(s), err)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return Config{}, fmt.Errorf("rest: location %s must not have a query or fragment", StripPassword(s))
	}
	cfg := Config{display: *u}
	switch u.Scheme {
	case "http", "https":
		if u.Hostname() == "" {
			return Config{}, fmt.Errorf("rest: location %s has no host", StripPassword(s))
		}
		if p := u.Port(); p != "" {
			if _, err := strconv.ParseUint(p, 10, 16); err != nil {
				return Config{}, fmt.Errorf("rest: location %s: invalid port %q", StripPassword(s), p)
			}
		}
		cfg.URL = *u
	case "http+unix":
		socket, path, ok := strings.Cut(u.Path, ":")
		if !ok || socket == "" || !strings.HasPrefix(path, "/") {
			return Config{}, fmt.Errorf("rest: location %s: want http+unix:///path/to.socket:/repo/", StripPassword(s))
		}
		cfg.socket = socket
		cfg.URL = url.URL{Scheme: "http", Host: "localhost", User: u.User, Path: path}
	default:
		return Config{}, fmt.Errorf("rest: location %s: unsupported scheme %q (want http, https or http+unix)", StripPassword(s), u.Scheme)
	}
	return cfg, nil
}

// ApplyEnvironment takes the user name and password from
// RESTIC_REST_USERNAME and RESTIC_REST_PASSWORD when the URL carries
// neither, as restic does.
func (c *Config) ApplyEnvironment() {
	if c.URL.User != nil {
		return
	}
	user, password := os.Getenv("RESTIC_REST_USERNAME"), os.Getenv("RESTIC_REST_PASSWORD")
	if user == "" && password == "" {
		return
	}
	c.URL.User = url.UserPassword(user, password)
	c.display.User = c.URL.User
}

// String returns the location with the password replaced by "***", so a
// Config can be logged.
func (c Config) String() string {
	u := c.display
	if u.Scheme == "" { // built by hand rather than by ParseConfig
		u = c.URL
	}
	return "rest:" + redact(u)
}

// GoString keeps %#v from printing the password.
func (c Config) GoString() string {
	return fmt.Sprintf("rest.Config{URL: %q, Connections: %d, RootCAFiles: %q, ClientCertFile: %q}",
		c.String(), c.Connections, c.RootCAFiles, c.ClientCertFile)
}

// redact renders u with its password, if any, replaced by "***".
func redact(u url.URL) string {
	if u.User == nil {
		return u.String()
	}
	if _, ok := u.User.Password(); !ok {
		return u.String()
	}
	user := url.User(u.User.Username()).String()
	u.User = nil
	s := u.String()
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		return scheme + "://" + user + ":***@" + rest
	}
	return s
}

// StripPassword returns the REST location s with its password replaced by
// "***". It never fails: text that does not parse is returned with
// everything between "//" and the last "@" of its authority replaced, so
// it is safe to log whatever the user typed.
func StripPassword(s string) string {
	rest, ok := strings.CutPrefix(s, "rest:")
	if !ok {
		return s
	}
	if u, err := url.Parse(rest); err == nil {
		return "rest:" + redact(*u)
	}
	// Unparseable: cut out any userinfo by hand.
	scheme, after, ok := strings.Cut(rest, "://")
	if !ok {
		return s
	}
	authority, path, _ := strings.Cut(after, "/")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		user, _, _ := strings.Cut(authority[:i], ":")
		authority = user + ":***@" + authority[i+1:]
	}
	if path != "" || strings.Contains(after, "/") {
		return "rest:" + scheme + "://" + authority + "/" + path
	}
	return "rest:" + scheme + "://" + authority
}

// SetOption applies one of restic's "-o rest.KEY=VALUE" options (key without
// the "rest." prefix). The only one is "connections".
func (c *Config) SetOption(key, value string) error {
	switch key {
	case "connections":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || n == 0 {
			return fmt.Errorf("rest.connections: %q is not a positive number", value)
		}
		c.Connections = uint(n)
		return nil
	case "stuck-request-timeout":
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return fmt.Errorf("rest.stuck-request-timeout: %q is not a positive duration", value)
		}
		c.StuckRequestTimeout = d
		return nil
	}
	return fmt.Errorf("unknown option rest.%s (known: rest.connections, rest.stuck-request-timeout)", key)
}
