package backendtest_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/mem"
)

// brokenEnv selects the contract violation TestBrokenBackendChild runs with.
const brokenEnv = "CAIRN_BACKENDTEST_BROKEN"

// broken is the in-memory backend with one deliberate contract violation,
// to prove that the suite notices it.
type broken struct {
	*mem.Backend
	mode string
}

func (b *broken) Location() string {
	if b.mode == "leaks-password" {
		return "rest:https://user:" + backendtest.PasswordMarker + "@example.org/repo"
	}
	return b.Backend.Location()
}

func (b *broken) Save(ctx context.Context, h backend.Handle, rd backend.RewindReader) error {
	switch b.mode {
	case "ignores-context":
		ctx = context.Background()
	case "partial-save", "no-length-check":
		data, err := io.ReadAll(rd)
		if err != nil && b.mode == "no-length-check" {
			return err
		}
		if serr := b.Backend.Save(ctx, h, backend.NewByteReader(data, false)); serr != nil {
			return serr
		}
		return err
	case "hostile-names":
		if strings.Contains(h.Name, "/") {
			h = backend.Handle{Type: backend.ConfigFile} // what a naive path join does with "../config"
		}
	}
	return b.Backend.Save(ctx, h, rd)
}

func (b *broken) Load(ctx context.Context, h backend.Handle, length int, offset int64, fn func(io.Reader) error) error {
	err := b.Backend.Load(ctx, h, length, offset, fn)
	switch {
	case b.mode == "silent-short-read" && errors.Is(err, backend.ErrShortRead):
		data, lerr := backend.LoadAll(ctx, b.Backend, h)
		if lerr != nil {
			return lerr
		}
		if offset > int64(len(data)) {
			offset = int64(len(data))
		}
		return fn(strings.NewReader(string(data[offset:])))
	case b.mode == "plain-not-found" && err != nil:
		return errors.New(err.Error())
	}
	return err
}

func (b *broken) List(ctx context.Context, t backend.FileType, fn func(backend.FileInfo) error) error {
	switch b.mode {
	case "list-ignores-fn-error":
		return b.Backend.List(ctx, t, func(fi backend.FileInfo) error { _ = fn(fi); return nil })
	case "list-all-types":
		for _, ft := range backend.AllTypes {
			if err := b.Backend.List(ctx, ft, fn); err != nil {
				return err
			}
		}
		return nil
	}
	return b.Backend.List(ctx, t, fn)
}

// TestBrokenBackendChild runs one subtest of the suite against a broken
// backend. It only does something as a subprocess of TestBrokenBackends.
func TestBrokenBackendChild(t *testing.T) {
	mode := os.Getenv(brokenEnv)
	if mode == "" {
		t.Skip("helper process for TestBrokenBackends")
	}
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return &broken{Backend: mem.New(), mode: mode}
	})
}

// TestBrokenBackends proves that the suite fails for each violation, in the
// subtest that covers it. Each case runs in a subprocess because a failing
// subtest cannot be contained inside this process.
func TestBrokenBackends(t *testing.T) {
	tests := []struct {
		mode    string
		subtest string
		fails   bool
	}{
		{"none", "RangedLoad", false},
		{"silent-short-read", "RangedLoad", true},
		{"silent-short-read", "ZeroLength", true},
		{"plain-not-found", "Missing", true},
		{"partial-save", "SaveReaderFails", true},
		{"partial-save", "SaveReaderFailsKeepsOld", true},
		{"no-length-check", "SaveShortReader", true},
		{"ignores-context", "SaveCancelledBefore", true},
		{"hostile-names", "HostileNames", true},
		{"list-ignores-fn-error", "ListStopsOnError", true},
		{"list-all-types", "ListByType", true},
		{"leaks-password", "Secrets", true},
	}
	for _, tc := range tests {
		t.Run(tc.mode+"/"+tc.subtest, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0],
				"-test.run=^TestBrokenBackendChild$/^"+tc.subtest+"$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+tc.mode)
			out, err := cmd.CombinedOutput()
			failed := strings.Contains(string(out), "--- FAIL: TestBrokenBackendChild/"+tc.subtest)
			passed := strings.Contains(string(out), "--- PASS: TestBrokenBackendChild/"+tc.subtest)
			switch {
			case tc.fails && (!failed || err == nil):
				t.Errorf("the suite did not catch %q in %s:\n%s", tc.mode, tc.subtest, out)
			case !tc.fails && (!passed || err != nil):
				t.Errorf("the unbroken control run of %s did not pass (%v):\n%s", tc.subtest, err, out)
			}
		})
	}
}
