package s3

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/internal/testserver"
)

// TestAccessDeniedOnWrite writes to an existing private bucket without
// credentials: the server refuses, and the error is permanent (no retrying
// layer waits on it), wraps fs.ErrPermission, and names the operation, the
// file and the location.
func TestAccessDeniedOnWrite(t *testing.T) {
	for _, kind := range testserver.S3Kinds {
		t.Run(string(kind), func(t *testing.T) {
			srv := testserver.S3Server(t, kind, testserver.S3Options{})
			create(t, config(t, srv, "denied", "r"))
			cfg := config(t, srv, "denied", "r")
			cfg.KeyID, cfg.Secret, cfg.UnsafeAnonymousAuth = "", "", true
			be := open(t, cfg)
			data := backendtest.Random(7, 1000)
			h := backendtest.HandleFor(backend.SnapshotFile, data)
			start := time.Now()
			err := be.Save(t.Context(), h, backend.NewByteReader(data, true))
			if !errors.Is(err, fs.ErrPermission) || !backend.IsPermanent(err) {
				t.Fatalf("anonymous Save = %v, want a permanent error wrapping fs.ErrPermission", err)
			}
			for _, want := range []string{"save", h.String(), "s3:http://" + srv.Endpoint + "/denied/r"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refusal took %v (retried?)", d)
			}
		})
	}
}
