package s3

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/internal/testserver"
)

func TestCredentialChain(t *testing.T) {
	srv := testserver.S3Server(t, testserver.MinIO, testserver.S3Options{})
	works := func(t *testing.T, cfg Config) {
		t.Helper()
		be := create(t, cfg)
		data := []byte("credentials")
		h := backendtest.HandleFor(backend.KeyFile, data)
		if err := be.Save(t.Context(), h, backend.NewByteReader(data, false)); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
		cfg := config(t, srv, "chain", unique("env"))
		cfg.KeyID, cfg.Secret = "", ""
		works(t, cfg)
	})
	t.Run("shared credentials file with profile", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "credentials")
		content := fmt.Sprintf("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n"+
			"[backup]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.SecretKey)
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
		t.Setenv("AWS_PROFILE", "backup")
		cfg := config(t, srv, "chain", unique("profile"))
		cfg.KeyID, cfg.Secret = "", ""
		works(t, cfg)
	})
	t.Run("static keys win over the environment", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "wrong")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
		works(t, config(t, srv, "chain", unique("static")))
	})
	t.Run("none", func(t *testing.T) {
		cfg := config(t, srv, "chain", "none")
		cfg.KeyID, cfg.Secret = "", ""
		start := time.Now()
		_, err := Open(t.Context(), cfg, nil)
		if err == nil || !strings.Contains(err.Error(), "no credentials found") {
			t.Fatalf("Open without credentials = %v, want a clear error", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Open took %v to find no credentials", d)
		}
		t.Setenv("AWS_ACCESS_KEY_ID", "only-the-id")
		if _, err := Open(t.Context(), cfg, nil); err == nil || !strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY is empty") {
			t.Fatalf("Open with only AWS_ACCESS_KEY_ID = %v", err)
		}
	})
	t.Run("anonymous", func(t *testing.T) {
		cfg := config(t, srv, "chain", "anon")
		cfg.KeyID, cfg.Secret, cfg.UnsafeAnonymousAuth = "", "", true
		be := open(t, cfg)
		_, err := be.Stat(t.Context(), backend.Handle{Type: backend.ConfigFile})
		if !errors.Is(err, fs.ErrPermission) {
			t.Fatalf("anonymous Stat against a private bucket = %v, want fs.ErrPermission", err)
		}
	})
}

func TestWrongCredentials(t *testing.T) {
	for _, kind := range testserver.S3Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := testserver.S3Server(t, kind, testserver.S3Options{})
			good := create(t, config(t, srv, "wrongcreds", "r"))
			_ = good
			for _, tc := range []struct{ name, key, secret string }{
				{"wrong secret", srv.AccessKey, "wrong-" + backendtest.PasswordMarker},
				{"unknown key", "nosuchkey", "wrong-" + backendtest.PasswordMarker},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cfg := config(t, srv, "wrongcreds", "r")
					cfg.KeyID, cfg.Secret = tc.key, tc.secret
					be := open(t, cfg)
					start := time.Now()
					_, err := be.Stat(t.Context(), backend.Handle{Type: backend.ConfigFile})
					var se *Error
					if !errors.Is(err, fs.ErrPermission) || !errors.As(err, &se) || !se.Permanent() {
						t.Fatalf("Stat with %s = %v, want a permanent *Error wrapping fs.ErrPermission", tc.name, err)
					}
					if errors.Is(err, fs.ErrNotExist) {
						t.Errorf("error %v claims the file does not exist", err)
					}
					if d := time.Since(start); d > 5*time.Second {
						t.Errorf("rejection took %v (retried?)", d)
					}
					if strings.Contains(err.Error(), backendtest.PasswordMarker) {
						t.Errorf("error reveals the secret: %v", err)
					}
					data := []byte("x")
					err = be.Save(t.Context(), backendtest.HandleFor(backend.KeyFile, data), backend.NewByteReader(data, false))
					if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "credentials") {
						t.Errorf("Save with %s = %v, want fs.ErrPermission that names the credentials", tc.name, err)
					}
				})
			}
		})
	}
}
