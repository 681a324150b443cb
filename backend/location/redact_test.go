package location_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/location"
)

func TestStripURLPassword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rest:https://user:secret@host:8000/repo/", "rest:https://user:***@host:8000/repo/"},
		{"rest:https://user@host/repo/", "rest:https://user@host/repo/"},
		{"rest:https://host/repo/", "rest:https://host/repo/"},
		{"s3:https://key:p%40ss@host/bucket", "s3:https://key:***@host/bucket"},
		{"rest:https://user:pa/ss@host/", "rest:https://user:***@host/"},
		{"rest:https://user:p@ss@host/", "rest:https://user:***@host/"},
		{"rest:http://h/dir@x/", "rest:http://h/dir@x/"},
		{"/plain/path", "/plain/path"},
		{"x://a:1@h and y://b:2@k", "x://a:***@h and y://b:***@k"},
		{"rest:https://user:secret@host/?q=a@b", "rest:https://user:***@host/?q=a@b"},
	}
	for _, tc := range tests {
		if got := location.StripURLPassword(tc.in); got != tc.want {
			t.Errorf("StripURLPassword(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// No path through the registry may print the password of a location.
func TestRegistryNeverShowsPassword(t *testing.T) {
	const secret = "s3cr3t-Value"
	r := newRegistry(t, new([]fakeConfig))
	leaky := location.Scheme[string]{
		Name:  "leaky",
		Parse: func(s string) (string, error) { return s, nil },
		Open: func(ctx context.Context, s string) (backend.Backend, error) {
			// A careless backend quoting its whole location.
			return nil, fmt.Errorf("cannot reach %q: %w", s, backend.ErrNoRepository)
		},
	}
	if err := location.Register(r, leaky); err != nil {
		t.Fatal(err)
	}

	check := func(what, s string) {
		t.Helper()
		if strings.Contains(s, secret) {
			t.Errorf("%s shows the password: %s", what, s)
		}
	}
	good := "rest:https://user:" + secret + "@127.0.0.1:8000/repo/"
	check("StripPassword", r.StripPassword(good))
	l, err := r.Parse(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("Location.String", l.String())
	check("fmt %v", fmt.Sprintf("%v %s", l, l))
	if !strings.Contains(l.String(), "user:***@127.0.0.1:8000") {
		t.Errorf("Location.String = %q, want the user and host kept", l.String())
	}

	for _, bad := range []string{
		"rest:https://user:" + secret + "@host:99999/repo/", // invalid port
		"rest:ftp://user:" + secret + "@host/repo/",         // unsupported scheme
		"s3:https://key:" + secret + "@host/bucket",         // backend not registered
		"odd://user:" + secret + "@host/",                   // ambiguous
	} {
		_, err := r.Parse(bad, nil)
		if err == nil {
			t.Errorf("Parse(%s) accepted", r.StripPassword(bad))
			continue
		}
		check("Parse error", err.Error())
		check("StripPassword", r.StripPassword(bad))
	}

	_, err = r.Open(context.Background(), "leaky:https://u:"+secret+"@h/", nil)
	if err == nil {
		t.Fatal("leaky Open succeeded")
	}
	check("Open error", err.Error())
	if !errors.Is(err, backend.ErrNoRepository) {
		t.Errorf("scrubbed error lost its chain: %v", err)
	}
}

// Strings the registry cannot parse are never echoed beyond their scheme:
// "user:password@host:/repo" without "sftp:" must not show the password.
func TestUnparsedLocationNotEchoed(t *testing.T) {
	const secret = "hunter2"
	r := newRegistry(t, new([]fakeConfig))
	for _, s := range []string{"alice:" + secret + "@host:/repo", "b2:alice:" + secret + "@bucket", "swift:" + secret + ":/x"} {
		_, err := r.Parse(s, nil)
		if err == nil {
			t.Fatalf("Parse(%q) accepted", s)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestPasswords(t *testing.T) {
	got := location.Passwords("rest:https://u:p%40ss@h/ and x://a:b@c and /plain and s3:https://k@h/")
	if strings.Join(got, "|") != "p%40ss|p@ss|b" {
		t.Errorf("Passwords = %q", got)
	}
}
