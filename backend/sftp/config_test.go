package sftp_test

import (
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend/sftp"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		in               string
		user, host, path string
		port             int
	}{
		// restic's own table, ported.
		{"sftp://user@host/dir/subdir", "user", "host", "dir/subdir", 0},
		{"sftp://host/dir/subdir", "", "host", "dir/subdir", 0},
		{"sftp://host//dir/subdir", "", "host", "/dir/subdir", 0},
		{"sftp://host:10022//dir/subdir", "", "host", "/dir/subdir", 10022},
		{"sftp://user@host:10022//dir/subdir", "user", "host", "/dir/subdir", 10022},
		{"sftp://user@host/dir/subdir/../other", "user", "host", "dir/other", 0},
		{"sftp://user@host/dir///subdir", "user", "host", "dir/subdir", 0},
		{"sftp://user@[::1]/dir", "user", "::1", "dir", 0},
		{"sftp://user@[::1]:22/dir", "user", "::1", "dir", 22},
		{"sftp:user@host:/dir/subdir", "user", "host", "/dir/subdir", 0},
		{"sftp:user@domain@host:/dir/subdir", "user@domain", "host", "/dir/subdir", 0},
		{"sftp:host:../dir/subdir", "", "host", "../dir/subdir", 0},
		{"sftp:user@host:dir/subdir:suffix", "user", "host", "dir/subdir:suffix", 0},
		{"sftp:user@host:dir/subdir/../other", "user", "host", "dir/other", 0},
		{"sftp:user@host:dir///subdir", "user", "host", "dir/subdir", 0},
		// cairn's additions.
		{"sftp:nas-alias:backups", "", "nas-alias", "backups", 0},
		{"sftp:user@[fe80::1]:/srv/repo", "user", "fe80::1", "/srv/repo", 0},
		{"sftp:host:", "", "host", ".", 0},
	}
	for _, tc := range tests {
		cfg, err := sftp.ParseConfig(tc.in)
		if err != nil {
			t.Errorf("ParseConfig(%q): %v", tc.in, err)
			continue
		}
		if cfg.User != tc.user || cfg.Host != tc.host || cfg.Path != tc.path || cfg.Port != tc.port {
			t.Errorf("ParseConfig(%q) = user %q host %q port %d path %q; want %q %q %d %q",
				tc.in, cfg.User, cfg.Host, cfg.Port, cfg.Path, tc.user, tc.host, tc.port, tc.path)
		}
		if cfg.Connections != sftp.DefaultConnections || cfg.RequestsPerFile != sftp.DefaultRequestsPerFile {
			t.Errorf("ParseConfig(%q): defaults not applied: %+v", tc.in, cfg)
		}
		// String must give a location that parses to the same config.
		again, err := sftp.ParseConfig(cfg.String())
		if err != nil || again.User != cfg.User || again.Host != cfg.Host || again.Port != cfg.Port || again.Path != cfg.Path {
			t.Errorf("ParseConfig(%q).String() = %q, which parses to %+v, %v", tc.in, cfg.String(), again, err)
		}
	}
}

func TestParseConfigInvalid(t *testing.T) {
	for _, in := range []string{
		"sftp://host:dir",
		"sftp://host",
		"sftp://host/",
		"sftp:hostonly",
		"sftp:user@host:~/repo",
		"sftp://host/~/repo",
		"sftp://user:secret@host/repo",
		"sftp://host:99999/repo",
		"sftp:[::1/repo",
		"sftp::/repo",
		"s3:host/bucket",
	} {
		if cfg, err := sftp.ParseConfig(in); err == nil {
			t.Errorf("ParseConfig(%q) = %+v, want an error", in, cfg)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseConfig(%q) error reveals the password: %v", in, err)
		}
	}
}

func TestSetOption(t *testing.T) {
	cfg, err := sftp.ParseConfig("sftp:host:repo")
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{
		"sftp.connections": "8", "requests-per-file": "128", "sftp.key": "/secret/key",
		"sftp.known-hosts": "/secret/known_hosts", "sftp.host-key": "SHA256:abc",
		"sftp.password-env": "NAS_PASSWORD", "sftp.args": "-p 2222",
	} {
		if err := cfg.SetOption(name, value); err != nil {
			t.Errorf("SetOption(%s, %s): %v", name, value, err)
		}
	}
	if cfg.Connections != 8 || cfg.RequestsPerFile != 128 || cfg.Key != "/secret/key" || cfg.KnownHosts != "/secret/known_hosts" ||
		cfg.HostKey != "SHA256:abc" || cfg.PasswordEnv != "NAS_PASSWORD" || cfg.Args != "-p 2222" {
		t.Errorf("options not applied: %+v", cfg)
	}
	for name, value := range map[string]string{"connections": "0", "sftp.connections": "x", "sftp.compression": "yes", "requests-per-file": "-1"} {
		if err := cfg.SetOption(name, value); err == nil {
			t.Errorf("SetOption(%s, %s) succeeded, want an error", name, value)
		}
	}
}
