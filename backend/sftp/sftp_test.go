package sftp_test

import (
	"path/filepath"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/sftp"
	"github.com/cairn-backup/cairn/internal/sshtest"
)

// isolate gives the test an empty home directory and no agent, so the
// machine's own ~/.ssh never leaks in.
func isolate(t testing.TB) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	return home
}

// config returns a Config for a repository at dir on s, with the key and
// known_hosts given explicitly.
func config(t testing.TB, s *sshtest.Server, dir string) sftp.Config {
	t.Helper()
	cfg, err := sftp.ParseConfig("sftp:" + s.User + "@" + s.Host + ":" + dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = s.Port
	cfg.Key = s.UserKey.Path
	cfg.KnownHosts = s.KnownHosts
	return cfg
}

func create(t testing.TB, cfg sftp.Config) *sftp.Backend {
	t.Helper()
	be, err := sftp.Create(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Create(%s): %v", cfg, err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

func TestConformance(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return create(t, config(t, s, filepath.Join(t.TempDir(), "repo")))
	})
}

// TestConformanceOneConnection runs the suite with a single connection and
// few requests per file, where every concurrent operation shares one SFTP
// session.
func TestConformanceOneConnection(t *testing.T) {
	isolate(t)
	s := sshtest.Start(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		cfg := config(t, s, filepath.Join(t.TempDir(), "repo"))
		cfg.Connections = 1
		cfg.RequestsPerFile = 2
		return create(t, cfg)
	})
}
