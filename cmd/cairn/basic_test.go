package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/chunk"
)

func TestVersion(t *testing.T) {
	r := newRunner(t)
	out := r.ok("version").stdout
	want := "cairn " + version + " compiled with " + runtime.Version() + " on " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if out != want {
		t.Errorf("version = %q, want %q", out, want)
	}
	msgs := jsonLines(t, r.ok("version", "--json").stdout)
	if len(msgs) != 1 || msgs[0]["message_type"] != "version" || msgs[0]["version"] != version {
		t.Fatalf("version --json = %v", msgs)
	}
	// Same fields as restic's.
	o := oracleFor(t)
	theirs := jsonLines(t, string(o.MustRun("", "version", "--json").Stdout))
	if got, want := strings.Join(keysOf(msgs[0]), ","), strings.Join(keysOf(theirs[0]), ","); got != want {
		t.Errorf("version --json fields %s, restic's %s", got, want)
	}
	// version needs neither a repository nor a password: a password
	// command must not even run.
	r.with("RESTIC_PASSWORD_COMMAND=false").ok("version")
}

func TestInit(t *testing.T) {
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	dir := filepath.Join(t.TempDir(), "v1")
	res := r.ok("init", "-r", dir, "--repository-version", "1")
	if !strings.Contains(res.stdout, "created restic repository") || !strings.Contains(res.stdout, dir) {
		t.Errorf("init output: %s", res)
	}
	o := oracleFor(t)
	if cfg := o.CatConfig(dir); cfg.Version != 1 {
		t.Errorf("restic sees version %d, want 1", cfg.Version)
	}

	dir2 := filepath.Join(t.TempDir(), "v2")
	msgs := jsonLines(t, r.ok("init", "--json", "-r", dir2).stdout)
	if len(msgs) != 1 || msgs[0]["message_type"] != "initialized" || msgs[0]["repository"] != dir2 {
		t.Fatalf("init --json = %v", msgs)
	}
	cfg := o.CatConfig(dir2)
	if cfg.Version != 2 || msgs[0]["id"] != cfg.ID {
		t.Errorf("restic sees %+v, init said id %v", cfg, msgs[0]["id"])
	}
	theirs := jsonLines(t, string(o.MustRun("", "init", "--json", "-r", filepath.Join(t.TempDir(), "r")).Stdout))
	if got, want := strings.Join(keysOf(msgs[0]), ","), strings.Join(keysOf(theirs[0]), ","); got != want {
		t.Errorf("init --json fields %s, restic's %s", got, want)
	}

	// A second init of an existing repository is a no-op that succeeds
	// (the chart's init hook runs on every upgrade); it never writes.
	cfgBefore, keysBefore := repoFiles(t, dir2)
	res = r.run("init", "-r", dir2, "--repository-version", "1")
	if res.code != 0 || !strings.Contains(res.stdout, "already initialized") || !strings.Contains(res.stdout, dir2) ||
		!strings.Contains(res.stdout, "version 2") {
		t.Errorf("second init: %s", res)
	}
	again := jsonLines(t, r.ok("init", "--json", "-r", dir2).stdout)
	if len(again) != 1 || again[0]["message_type"] != "initialized" || again[0]["id"] != cfg.ID ||
		again[0]["repository"] != dir2 || again[0]["already_initialized"] != true {
		t.Errorf("second init --json = %v", again)
	}
	if cfgAfter, keysAfter := repoFiles(t, dir2); cfgAfter != cfgBefore || keysAfter != keysBefore {
		t.Errorf("second init changed the repository: %d keys before, %d after; config changed: %v",
			keysBefore, keysAfter, cfgAfter != cfgBefore)
	}
	if cfg2 := o.CatConfig(dir2); cfg2 != cfg {
		t.Errorf("restic sees %+v after the second init, %+v before", cfg2, cfg)
	}
	// ... but the password must open it.
	if res := r.with("RESTIC_PASSWORD=wrong").run("init", "-r", dir2); res.code != 12 || !strings.Contains(res.stderr, "already exists") {
		t.Errorf("second init with a wrong password: %s", res)
	}
	if _, keysAfter := repoFiles(t, dir2); keysAfter != keysBefore {
		t.Errorf("init with a wrong password changed the keys: %d before, %d after", keysBefore, keysAfter)
	}
	// A location that cannot be read is neither "no repository" nor
	// "already initialized".
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := r.run("init", "-r", notDir); res.code != 1 || !strings.Contains(res.stderr, "unable to read repository location") {
		t.Errorf("init at a regular file: %s", res)
	}

	// --copy-chunker-params takes the polynomial of --from-repo, with its
	// own password file.
	pwFile := filepath.Join(t.TempDir(), "from-pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir3 := filepath.Join(t.TempDir(), "copy")
	r.with("RESTIC_PASSWORD=other password").ok("init", "-r", dir3, "--copy-chunker-params", "--from-repo", dir2, "--from-password-file", pwFile)
	cfg3 := o.WithPassword("other password").CatConfig(dir3)
	if cfg3.ChunkerPolynomial != cfg.ChunkerPolynomial || cfg3.ID == cfg.ID {
		t.Errorf("copied polynomial %s (id %s), source %s (id %s)", cfg3.ChunkerPolynomial, cfg3.ID, cfg.ChunkerPolynomial, cfg.ID)
	}
	if _, err := chunk.ParsePol(cfg3.ChunkerPolynomial); err != nil {
		t.Error(err)
	}
	if res := r.run("init", "-r", filepath.Join(t.TempDir(), "x"), "--from-repo", dir2); res.code != 1 || !strings.Contains(res.stderr, "only be specified when copying") {
		t.Errorf("--from-repo without --copy-chunker-params: %s", res)
	}
}

// repoFiles returns a local repository's config bytes and its number of
// key files.
func repoFiles(t *testing.T, dir string) (string, int) {
	t.Helper()
	cfg, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := os.ReadDir(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return string(cfg), len(keys)
}

// Every object cat prints is byte for byte what restic prints.
func TestCatLikeRestic(t *testing.T) {
	t.Parallel()
	dir := newRepo(t)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.txt": "alpha\n", "sub/b.txt": strings.Repeat("beta", 1000)})
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	summary := backupJSON(t, r, src)
	sn := summary["snapshot_id"].(string)
	o := oracleFor(t)

	names := func(sub string) []string {
		var out []string
		filepath.WalkDir(filepath.Join(dir, sub), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				out = append(out, d.Name())
			}
			return nil
		})
		return out
	}
	lk := openRepo(t, dir)
	var tree string
	for _, id := range []string{sn} {
		s, _, err := lk.FindSnapshot(t.Context(), id, nil)
		if err != nil {
			t.Fatal(err)
		}
		tree = s.Tree.String()
	}
	cases := [][]string{
		{"config"}, {"masterkey"},
		{"snapshot", sn}, {"snapshot", sn[:8]},
		{"key", names("keys")[0]},
		{"index", names("index")[0]},
		{"pack", names("data")[0]},
		{"blob", tree},
		{"tree", sn}, {"tree", sn + ":/" + strings.TrimPrefix(src, "/")},
	}
	for _, c := range cases {
		mine := r.ok(append([]string{"cat"}, c...)...).stdout
		theirs := string(o.MustRun(dir, append([]string{"cat"}, c...)...).Stdout)
		if mine != theirs {
			t.Errorf("cat %v differs from restic's\ncairn:  %.300q\nrestic: %.300q", c, mine, theirs)
		}
	}
	// Extension: a tree by its ID.
	if got := r.ok("cat", "tree", tree).stdout; got != string(o.MustRun(dir, "cat", "tree", sn).Stdout) {
		t.Errorf("cat tree <tree id> differs from the snapshot's root tree")
	}
	for _, bad := range [][]string{{}, {"nonsense"}, {"snapshot"}, {"index", "abc"}} {
		if res := r.run(append([]string{"cat"}, bad...)...); res.code != 1 {
			t.Errorf("cat %v: %s", bad, res)
		}
	}
}

// writeFiles creates files (and their directories) below root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// backupJSON runs `backup --json` of the paths and returns the summary.
func backupJSON(t *testing.T, r *runner, args ...string) map[string]any {
	t.Helper()
	res := r.ok(append([]string{"backup", "--json"}, args...)...)
	msgs := jsonLines(t, res.stdout)
	if len(msgs) == 0 {
		t.Fatalf("backup --json printed nothing: %s", res)
	}
	last := msgs[len(msgs)-1]
	if last["message_type"] != "summary" {
		t.Fatalf("last backup message is not the summary: %v", last)
	}
	return last
}

// decode unmarshals JSON output into v.
func decode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
}
