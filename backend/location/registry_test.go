package location_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/location"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/backend/rest"
)

// fakeConfig is the config of a test scheme named like restic's sftp, so
// that option routing can be observed without a server.
type fakeConfig struct {
	Target      string
	Connections int
	Key         string
}

func fakeScheme(name string, opened *[]fakeConfig) location.Scheme[fakeConfig] {
	return location.Scheme[fakeConfig]{
		Name: name,
		Parse: func(s string) (fakeConfig, error) {
			rest, ok := strings.CutPrefix(s, name+":")
			if !ok || rest == "" {
				return fakeConfig{}, fmt.Errorf("bad %s location", name)
			}
			return fakeConfig{Target: rest, Connections: 5}, nil
		},
		SetOption: func(c *fakeConfig, key, value string) error {
			switch key {
			case "connections":
				n, err := strconv.Atoi(value)
				if err != nil || n < 1 {
					return fmt.Errorf("want a positive number, got %q", value)
				}
				c.Connections = n
			case "key":
				c.Key = value
			default:
				return fmt.Errorf("unknown option %q", key)
			}
			return nil
		},
		Open: func(ctx context.Context, c fakeConfig) (backend.Backend, error) {
			*opened = append(*opened, c)
			return mem.New(), nil
		},
	}
}

func newRegistry(t *testing.T, opened *[]fakeConfig) *location.Registry {
	t.Helper()
	r := location.New()
	if err := location.Register(r, location.Local()); err != nil {
		t.Fatal(err)
	}
	if err := location.Register(r, fakeScheme("sftp", opened)); err != nil {
		t.Fatal(err)
	}
	restScheme := location.Scheme[rest.Config]{
		Name:          "rest",
		Parse:         rest.ParseConfig,
		StripPassword: rest.StripPassword,
		Open: func(ctx context.Context, c rest.Config) (backend.Backend, error) {
			return rest.Open(ctx, c, nil)
		},
	}
	if err := location.Register(r, restScheme); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParse(t *testing.T) {
	var opened []fakeConfig
	r := newRegistry(t, &opened)
	tests := []struct {
		in      string
		scheme  string
		config  any
		wantErr string
	}{
		{in: "/srv/repo", scheme: "local", config: "/srv/repo"},
		{in: "local:/srv/repo", scheme: "local", config: "/srv/repo"},
		{in: "local:rel/dir", scheme: "local", config: "rel/dir"},
		{in: "local:odd:name", scheme: "local", config: "odd:name"},
		{in: "relative/dir", scheme: "local", config: "relative/dir"},
		{in: "../up", scheme: "local", config: "../up"},
		{in: "C:\\Backups", scheme: "local", config: "C:\\Backups"},
		{in: "/with:colon", scheme: "local", config: "/with:colon"},
		{in: "sftp:host:/repo", scheme: "sftp", config: fakeConfig{Target: "host:/repo", Connections: 5}},
		{in: "odd:name", wantErr: `invalid backend "odd"`},
		{in: "s3:https://host/bucket", wantErr: "cairn has no s3 backend"},
		{in: "b2:bucket:path", wantErr: "cairn has no b2 backend"},
		{in: "", wantErr: "empty repository location"},
		{in: "local:", wantErr: "names no directory"},
		{in: "sftp:", wantErr: "bad sftp location"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			l, err := r.Parse(tc.in, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %v, want error containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if l.Scheme != tc.scheme {
				t.Errorf("scheme %q, want %q", l.Scheme, tc.scheme)
			}
			if l.Config() != tc.config {
				t.Errorf("config %#v, want %#v", l.Config(), tc.config)
			}
		})
	}
}

func TestUnsupportedIsErrUnsupported(t *testing.T) {
	r := newRegistry(t, new([]fakeConfig))
	_, err := r.Parse("azure:container:/path", nil)
	if !errors.Is(err, location.ErrUnsupported) {
		t.Fatalf("got %v, want ErrUnsupported", err)
	}
	if !strings.Contains(err.Error(), "available: local, rest, sftp") {
		t.Errorf("error does not list the available schemes: %v", err)
	}
}

func TestOptionsRouting(t *testing.T) {
	var opened []fakeConfig
	r := newRegistry(t, &opened)
	tests := []struct {
		name    string
		loc     string
		opts    []string
		want    fakeConfig
		wantErr string
	}{
		{name: "applied", loc: "sftp:h:/r", opts: []string{"sftp.connections=4", "SFTP.Key = /k "},
			want: fakeConfig{Target: "h:/r", Connections: 4, Key: "/k"}},
		{name: "other scheme ignored", loc: "sftp:h:/r", opts: []string{"s3.bucket-lookup=path", "rest.connections=9"},
			want: fakeConfig{Target: "h:/r", Connections: 5}},
		{name: "bad value", loc: "sftp:h:/r", opts: []string{"sftp.connections=zero"}, wantErr: "option sftp.connections: want a positive number"},
		{name: "unknown name", loc: "sftp:h:/r", opts: []string{"sftp.nope=1"}, wantErr: `option sftp.nope: unknown option "nope"`},
		{name: "unknown namespace", loc: "sftp:h:/r", opts: []string{"sfpt.connections=1"}, wantErr: "option sfpt.connections is not known"},
		{name: "no namespace", loc: "sftp:h:/r", opts: []string{"connections=1"}, wantErr: "option connections is not known"},
		{name: "local takes none", loc: "/tmp/x", opts: []string{"local.connections=4"}, wantErr: "local backend takes no options"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := location.ParseOptions(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			opened = nil
			be, err := r.Open(context.Background(), tc.loc, opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open = %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			if len(opened) != 1 || opened[0] != tc.want {
				t.Fatalf("opened with %+v, want %+v", opened, tc.want)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	got, err := location.ParseOptions([]string{" A.B = c ", "x.flag", "a.b=c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["a.b"] != "c" || got["x.flag"] != "" {
		t.Fatalf("got %v", got)
	}
	for _, bad := range [][]string{{"=v"}, {"a.b=1", "A.B=2"}} {
		if _, err := location.ParseOptions(bad); err == nil {
			t.Errorf("ParseOptions(%q) accepted", bad)
		}
	}
}

func TestLocalOpenAndCreate(t *testing.T) {
	r := newRegistry(t, new([]fakeConfig))
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")

	_, err := r.Open(ctx, dir, nil)
	if !errors.Is(err, backend.ErrNoRepository) {
		t.Fatalf("Open of a missing directory: %v, want ErrNoRepository", err)
	}
	be, err := r.Create(ctx, "local:"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	be.Close()
	if fi, err := os.Stat(filepath.Join(dir, "data", "ff")); err != nil || !fi.IsDir() {
		t.Fatalf("Create did not make restic's layout: %v", err)
	}
	be, err = r.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat config of an empty repository: %v", err)
	}
}

func TestRegisterRejects(t *testing.T) {
	r := location.New()
	if err := location.Register(r, location.Local()); err != nil {
		t.Fatal(err)
	}
	if err := location.Register(r, location.Local()); err == nil {
		t.Error("duplicate scheme accepted")
	}
	bad := location.Local()
	bad.Name = "Local"
	if err := location.Register(r, bad); err == nil {
		t.Error("upper-case scheme name accepted")
	}
	noOpen := location.Local()
	noOpen.Name, noOpen.Open = "x", nil
	if err := location.Register(r, noOpen); err == nil {
		t.Error("scheme without Open accepted")
	}
	if got := r.Schemes(); len(got) != 1 || got[0] != "local" {
		t.Errorf("Schemes() = %v", got)
	}
}
