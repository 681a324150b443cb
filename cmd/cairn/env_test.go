package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo"
)

// repoWithPassword creates a repository whose (only) key has password pw.
func repoWithPassword(t *testing.T, pw string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, pw, repo.InitOptions{Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	return dir
}

func writeFile(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// utf16LE encodes s as UTF-16 little endian with a byte order mark.
func utf16LE(s string) string {
	b := []byte{0xff, 0xfe}
	for _, r := range s {
		b = append(b, byte(r), byte(r>>8))
	}
	return string(b)
}

// The password sources and their trim rules, as restic has them.
func TestPasswordSources(t *testing.T) {
	const pw = "s3cret pass"
	dir := repoWithPassword(t, pw)
	base := newRunner(t).with("RESTIC_REPOSITORY=" + dir)
	tests := []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"env verbatim", []string{"RESTIC_PASSWORD=" + pw}, nil, 0},
		{"env not trimmed", []string{"RESTIC_PASSWORD=" + pw + "\n"}, nil, exitWrongPassword},
		{"file trimmed", nil, []string{"--password-file", writeFile(t, "  "+pw+"\n\n")}, 0},
		{"file with BOM and CRLF", nil, []string{"-p", writeFile(t, "\xef\xbb\xbf"+pw+"\r\n")}, 0},
		{"file UTF-16", nil, []string{"--password-file", writeFile(t, utf16LE(pw+"\r\n"))}, 0},
		{"file from env", []string{"RESTIC_PASSWORD_FILE=" + writeFile(t, pw+"\n")}, nil, 0},
		{"flag beats env", []string{"RESTIC_PASSWORD_FILE=" + writeFile(t, "wrong\n")}, []string{"--password-file", writeFile(t, pw)}, 0},
		{"file beats RESTIC_PASSWORD", []string{"RESTIC_PASSWORD=wrong"}, []string{"--password-file", writeFile(t, pw)}, 0},
		{"command trimmed", nil, []string{"--password-command", "printf '  %s\\n' '" + pw + "'"}, 0},
		{"command from env", []string{"RESTIC_PASSWORD_COMMAND=printf %s 's3cret pass'"}, nil, 0},
		{"command fails", nil, []string{"--password-command", "false"}, 1},
		{"file and command", nil, []string{"--password-command", "true", "--password-file", writeFile(t, pw)}, 1},
		{"missing file", nil, []string{"--password-file", filepath.Join(t.TempDir(), "nope")}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := base.with(tc.env...).withStdin(strings.NewReader("")).run(append(tc.args, "snapshots")...)
			if res.code != tc.code {
				t.Fatalf("want exit %d, got %s", tc.code, res)
			}
			if strings.Contains(res.stdout+res.stderr, pw) {
				t.Errorf("the password appears in the output:\n%s", res)
			}
		})
	}
}

// The password command runs without a shell: "$HOME" reaches printf as
// it is, so a repository whose password is literally "$HOME" opens.
func TestPasswordCommandNoShell(t *testing.T) {
	dir := repoWithPassword(t, "$HOME")
	r := newRunner(t).with("RESTIC_REPOSITORY=" + dir)
	r.ok("--password-command", "printf %s $HOME", "snapshots")
}

// Without any password source the first line of a non-terminal stdin is
// the password, as in restic.
func TestPasswordFromStdin(t *testing.T) {
	dir := repoWithPassword(t, "piped")
	r := newRunner(t).with("RESTIC_REPOSITORY=" + dir)
	r.withStdin(strings.NewReader("piped\nrest\n")).ok("snapshots")
	r.withStdin(strings.NewReader("other\n")).expect(exitWrongPassword, "snapshots")
	res := r.withStdin(strings.NewReader("")).expect(exitFatal, "snapshots")
	if !strings.Contains(res.stderr, "empty password") {
		t.Errorf("%s", res)
	}
	// backup --stdin cannot read both.
	res = r.withStdin(strings.NewReader("piped\n")).expect(exitFatal, "backup", "--stdin")
	if !strings.Contains(res.stderr, "cannot read both password and data from stdin") {
		t.Errorf("%s", res)
	}
}

func TestRepositoryLocation(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	r.with("RESTIC_REPOSITORY=" + dir).ok("snapshots")
	r.ok("--repository-file", writeFile(t, "\n  "+dir+"  \n"), "snapshots")
	r.with("RESTIC_REPOSITORY_FILE=" + writeFile(t, "local:"+dir+"\n")).ok("snapshots")
	// -r beats RESTIC_REPOSITORY.
	r.with("RESTIC_REPOSITORY=/nonexistent").ok("-r", dir, "snapshots")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshots"}, "please specify repository location"},
		{[]string{"-r", dir, "--repository-file", writeFile(t, dir), "snapshots"}, "mutually exclusive"},
		{[]string{"--repository-file", filepath.Join(t.TempDir(), "nope"), "snapshots"}, "does not exist"},
		{[]string{"-r", "odd:place", "snapshots"}, `add a "local:" prefix`},
		{[]string{"-r", "azure:container:/", "snapshots"}, "cairn has no azure backend"},
		{[]string{"-r", dir, "-o", "nonsense.key=1", "snapshots"}, "option nonsense.key is not known"},
		{[]string{"-r", dir, "-o", "local.connections=4", "snapshots"}, "takes no options"},
		{[]string{"-r", dir, "--compression", "extreme", "snapshots"}, "invalid compression mode"},
		{[]string{"-r", dir, "--pack-size", "1000", "snapshots"}, "out of range"},
		{[]string{"-r", dir, "-q", "-v", "snapshots"}, "--quiet and --verbose"},
	} {
		res := r.expect(exitFatal, tc.args...)
		if !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%v: message does not say %q:\n%s", tc.args, tc.want, res)
		}
	}
	// Options of other backends are ignored, like restic.
	r.ok("-r", dir, "-o", "sftp.connections=4", "-o", "s3.region=x", "snapshots")
	for _, kv := range []string{"RESTIC_PACK_SIZE=lots", "RESTIC_COMPRESSION=extreme"} {
		if res := r.with(kv).expect(exitFatal, "-r", dir, "snapshots"); !strings.Contains(res.stderr, strings.Split(kv, "=")[0]) {
			t.Errorf("%s: %s", kv, res)
		}
	}
	// A flag beats its variable.
	r.with("RESTIC_COMPRESSION=extreme").ok("-r", dir, "--compression", "max", "snapshots")
}

// The key hint picks which of two keys with the same password opens the
// repository (key list marks it as current).
func TestKeyHint(t *testing.T) {
	dir := newRepo(t)
	lk := openRepo(t, dir)
	second, err := lk.AddKey(context.Background(), testPassword, repo.KeyOptions{Params: &crypto.TestParams})
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	for _, hinted := range []string{lk.KeyID().String(), second.String()} {
		for _, args := range [][]string{{"--key-hint", hinted[:10]}, nil} {
			rr := r
			if args == nil {
				rr = r.with("RESTIC_KEY_HINT=" + hinted)
			}
			var keys []keyListJSON
			decode(t, rr.ok(append(args, "key", "list", "--json")...).stdout, &keys)
			current := ""
			for _, k := range keys {
				if k.Current {
					current = k.ID
				}
			}
			if current != hinted {
				t.Errorf("hint %s (args %v): current key %s", hinted[:8], args, current)
			}
		}
	}
}

func TestCacheDir(t *testing.T) {
	dir := newRepo(t)
	id := openRepo(t, dir).Config().ID
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"f": "x"})

	flagCache := filepath.Join(t.TempDir(), "flag-cache")
	r.ok("--cache-dir", flagCache, "backup", src)
	if entries, err := os.ReadDir(filepath.Join(flagCache, id, "snapshots")); err != nil || len(entries) == 0 {
		t.Errorf("--cache-dir: nothing cached in %s: %v", flagCache, err)
	}
	envCache := filepath.Join(t.TempDir(), "env-cache")
	r.with("RESTIC_CACHE_DIR=" + envCache).ok("snapshots")
	if _, err := os.Stat(filepath.Join(envCache, id)); err != nil {
		t.Errorf("RESTIC_CACHE_DIR not used: %v", err)
	}
	noCache := filepath.Join(t.TempDir(), "no-cache")
	r.with("RESTIC_CACHE_DIR="+noCache).ok("--no-cache", "snapshots")
	if _, err := os.Stat(noCache); !os.IsNotExist(err) {
		t.Errorf("--no-cache created %s (%v)", noCache, err)
	}
	// The cache is never backed up into its own repository.
	home := t.TempDir()
	writeFiles(t, home, map[string]string{"doc.txt": "hello"})
	r.ok("--cache-dir", filepath.Join(home, ".cache"), "backup", home)
	ls := r.ok("ls", "latest").stdout
	if strings.Contains(ls, ".cache/"+id) || !strings.Contains(ls, "doc.txt") {
		t.Errorf("backup of the directory holding the cache:\n%s", ls)
	}
}

// RESTIC_HOST is the snapshot's host, and the default host filter of the
// commands that select snapshots, as in restic 0.19.
func TestResticHost(t *testing.T) {
	dir := newRepo(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"f": "x"})
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	r.with("RESTIC_HOST=pod-stable").ok("backup", src)
	r.ok("backup", "--host", "other", src)

	var sns []map[string]any
	decode(t, r.with("RESTIC_HOST=pod-stable").ok("snapshots", "--json").stdout, &sns)
	if len(sns) != 1 || sns[0]["hostname"] != "pod-stable" {
		t.Fatalf("RESTIC_HOST filter: %v", sns)
	}
	decode(t, r.with("RESTIC_HOST=pod-stable").ok("snapshots", "--json", "--host", "").stdout, &sns)
	if len(sns) != 2 {
		t.Fatalf("--host '' must show every host, got %d", len(sns))
	}
	// A new pod with the stable name finds its parent; one without
	// gets the warning that explains why everything is read again.
	res := r.with("RESTIC_HOST=pod-stable").ok("backup", src)
	if !strings.Contains(res.stdout, "using parent snapshot") {
		t.Errorf("no parent with RESTIC_HOST:\n%s", res)
	}
	res = r.ok("backup", "--host", "pod-x7f2", src)
	if !strings.Contains(res.stderr, "no parent snapshot for host \"pod-x7f2\"") || !strings.Contains(res.stderr, "RESTIC_HOST") {
		t.Errorf("no warning for a changed host:\n%s", res)
	}
}
