package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-backup/cairn/backend/local"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/internal/testserver"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/index"
)

// cheapKey adds a key with cheap key derivation (same password) to a
// repository restic initialised, and returns its ID for --key-hint: every
// later open then takes milliseconds instead of restic's calibrated half
// second, while config and data stay restic's.
func cheapKey(t *testing.T, dir string) string {
	t.Helper()
	id, err := openRepo(t, dir).AddKey(t.Context(), testPassword, repo.KeyOptions{Params: &crypto.TestParams})
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// migrate upgrade_repo_v2 on a repository restic made as version 1: the
// same messages as restic, a config restic reads as version 2 (same ID and
// polynomial), a clean check, compressed backups afterwards, no config
// backup left behind.
func TestMigrateUpgradeRepoV2(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "repo")
	o := oracleFor(t)
	o.Init(dir, 1)
	hint := cheapKey(t, dir)
	o = o.WithEnv("RESTIC_KEY_HINT=" + hint)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	text := []byte(strings.Repeat("compressible text, again and again\n", 4000))
	if err := os.WriteFile(filepath.Join(src, "text"), text, 0o644); err != nil {
		t.Fatal(err)
	}
	o.Backup(dir, []string{src})
	before := o.CatConfig(dir)
	twin := filepath.Join(t.TempDir(), "twin")
	if err := os.CopyFS(twin, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir, "RESTIC_KEY_HINT="+hint, "TMPDIR="+tmp)

	// Without arguments: the list, as restic prints it.
	if got, want := r.ok("migrate").stdout, string(o.MustRun(twin, "migrate").Stdout); got != want || !strings.Contains(got, "upgrade_repo_v2\tupgrade a repository to version 2") {
		t.Errorf("migrate lists\n%s\nrestic lists\n%s", got, want)
	}

	res := r.ok("migrate", "upgrade_repo_v2")
	theirs := o.MustRun(twin, "migrate", "upgrade_repo_v2")
	for _, line := range []string{"checking repository integrity...", "no errors were found", "applying migration upgrade_repo_v2...", "migration upgrade_repo_v2: success"} {
		if !strings.Contains(res.stdout, line+"\n") || !strings.Contains(string(theirs.Stdout), line+"\n") {
			t.Errorf("line %q missing:\ncairn:\n%s\nrestic:\n%s", line, res.stdout, theirs.Stdout)
		}
	}
	after := o.CatConfig(dir)
	if after.Version != 2 || after.ID != before.ID || after.ChunkerPolynomial != before.ChunkerPolynomial {
		t.Errorf("config after upgrade %+v, before %+v", after, before)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	o.MustCheck(dir, true)

	// Compression now applies to new data.
	if err := os.WriteFile(filepath.Join(src, "more"), text[:len(text)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	sum := backupJSON(t, r, "--compression", "max", src)
	if added, packed := sum["data_added"].(float64), sum["data_added_packed"].(float64); packed*4 > added {
		t.Errorf("backup after the upgrade stored %v bytes for %v: not compressed", packed, added)
	}
	o.MustCheck(dir, true)
	rp := openRepo(t, dir)
	if err := rp.LoadIndex(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	compressed := false
	rp.Index().Each(func(l index.Location) bool {
		compressed = compressed || l.UncompressedLength != 0
		return true
	})
	if !compressed {
		t.Error("no compressed blob in the index after a backup into the upgraded repository")
	}
	restored := filepath.Join(t.TempDir(), "restored")
	o.Restore(dir, "latest", restored)
	if got, err := os.ReadFile(filepath.Join(restored, src, "more")); err != nil || string(got) != string(text[:len(text)/2]) {
		t.Errorf("restic restored %d bytes (%v), want %d", len(got), err, len(text)/2)
	}

	// Once upgraded: nothing to list, a refusal without --force (exit 0,
	// like restic), a failure with it, and an unknown name is reported.
	if got, want := r.ok("migrate").stdout, string(o.MustRun(twin, "migrate").Stdout); got != want || !strings.Contains(got, "no migrations found") {
		t.Errorf("migrate lists\n%s\nrestic lists\n%s", got, want)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"migrate", "upgrade_repo_v2"}, 0},
		{[]string{"migrate", "upgrade_repo_v2", "--force"}, 1},
		{[]string{"migrate", "no_such_migration"}, 0},
	} {
		mine := r.expect(c.code, c.args...)
		theirs := o.Run(twin, c.args...)
		if theirs.ExitCode != c.code {
			t.Errorf("restic %v exited %d, want %d", c.args, theirs.ExitCode, c.code)
		}
		// restic's stderr has its check's progress; compare the
		// migration's own lines.
		for _, line := range strings.Split(string(theirs.Stderr), "\n") {
			if strings.Contains(line, "migration") && !strings.Contains(mine.stderr, line) {
				t.Errorf("%v: restic printed %q, cairn did not:\n%s", c.args, line, mine.stderr)
			}
		}
	}
	if after := o.CatConfig(dir); after.Version != 2 {
		t.Errorf("config version %d after a forced second upgrade", after.Version)
	}
}

// keyFile matches a request for one key file: every open of a repository
// reads exactly one (the repositories below have a single key), and
// nothing else reads key files, so the reads count the opens.
var keyFile = regexp.MustCompile(`/keys/[0-9a-f]{64}$`)

// openCountingRepo creates a repository of the given version with cheap
// key derivation on rest-server and returns a location that reaches it
// through a proxy counting the key files read (see keyFile), the
// repository's directory and the count.
func openCountingRepo(t *testing.T, version uint) (loc, dir string, keyReads func() int) {
	t.Helper()
	srv := testserver.RestServer(t, testserver.RestOptions{})
	dir = filepath.Join(srv.DataDir, "counted")
	be, err := local.Create(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(t.Context(), be, testPassword, repo.InitOptions{Version: version, Key: repo.KeyOptions{Params: &crypto.TestParams}}, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	var mu sync.Mutex
	n := 0
	proxy := httputil.NewSingleHostReverseProxy(srv.URL)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && keyFile.MatchString(req.URL.Path) {
			mu.Lock()
			n++
			mu.Unlock()
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	return "rest:" + front.URL + "/counted/", dir, func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// countingPasswordCommand returns a RESTIC_PASSWORD_COMMAND setting for a
// script that prints testPassword and counts its runs.
func countingPasswordCommand(t *testing.T) (env string, runs func() int) {
	t.Helper()
	dir := t.TempDir()
	counter := filepath.Join(dir, "runs")
	script := filepath.Join(dir, "password.sh")
	body := "#!/bin/sh\necho run >> '" + counter + "'\nprintf '%s\\n' '" + testPassword + "'\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return "RESTIC_PASSWORD_COMMAND=" + script, func() int {
		b, err := os.ReadFile(counter)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return strings.Count(string(b), "run\n")
	}
}

// migrate upgrade_repo_v2 opens the repository once: the check it runs
// first uses the migration's handle (before, it opened the repository a
// second time, deriving the key again and, on a terminal without a
// password, prompting again). A second, forced upgrade in the same
// command sees version 2 on that handle: it is refused by the migration's
// own test and by UpgradeV2, and the check in between is clean.
func TestMigrateUpgradeRepoV2OpensOnce(t *testing.T) {
	t.Parallel()
	loc, dir, keyReads := openCountingRepo(t, 1)
	pwEnv, pwRuns := countingPasswordCommand(t)
	r := newRunner(t).with("RESTIC_REPOSITORY="+loc, pwEnv, "TMPDIR="+t.TempDir())

	res := r.ok("migrate", "upgrade_repo_v2")
	for _, line := range []string{"checking repository integrity...", "no errors were found", "migration upgrade_repo_v2: success"} {
		if !strings.Contains(res.stdout, line+"\n") {
			t.Errorf("line %q missing:\n%s", line, res)
		}
	}
	if n := keyReads(); n != 1 {
		t.Errorf("migrate upgrade_repo_v2 read a key file %d times, want 1 (one open)", n)
	}
	if n := pwRuns(); n != 1 {
		t.Errorf("migrate upgrade_repo_v2 ran the password command %d times, want 1", n)
	}
	if v := openRepo(t, dir).Config().Version; v != 2 {
		t.Fatalf("config version %d after the upgrade", v)
	}

	// Back to version 1, then two upgrades in one command.
	loc, dir, keyReads = openCountingRepo(t, 1)
	r = r.with("RESTIC_REPOSITORY=" + loc)
	res = r.expect(1, "migrate", "--force", "upgrade_repo_v2", "upgrade_repo_v2")
	if got := strings.Count(res.stdout, "no errors were found\n"); got != 2 {
		t.Errorf("%d clean checks, want 2 (before each upgrade):\n%s", got, res)
	}
	for _, want := range []string{
		"check for migration upgrade_repo_v2 failed, continuing anyway",
		"migration upgrade_repo_v2 failed: repository has version 2, only upgrades from version 1 are supported",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("the second upgrade did not see version 2 on the handle: %q missing\n%s", want, res)
		}
	}
	if n := keyReads(); n != 1 {
		t.Errorf("two migrations read a key file %d times, want 1 (one open)", n)
	}
	if v := openRepo(t, dir).Config().Version; v != 2 {
		t.Errorf("config version %d after the upgrade", v)
	}
}
