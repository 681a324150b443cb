package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/testserver"
)

// rest-server --append-only: backups work and leave no lock behind
// (rest-server lets clients delete locks, as restic relies on), unlock
// --remove-all works for the same reason, and a command that must delete
// anything else fails at once, non-zero, with an error naming append-only
// mode. restic still finds the repository clean.
func TestBackendRestAppendOnly(t *testing.T) {
	srv := testserver.RestServer(t, testserver.RestOptions{AppendOnly: true})
	loc := srv.Repo("", "", "repo")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+loc)
	r.ok("init")
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.txt": "first", "dir/b.txt": "second"})
	r.ok("backup", src)
	writeFiles(t, src, map[string]string{"a.txt": "changed"})
	r.ok("backup", src)

	locks, err := os.ReadDir(filepath.Join(srv.DataDir, "repo", "locks"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(locks) != 0 {
		t.Errorf("%d locks left after two backups in append-only mode", len(locks))
	}
	r.ok("unlock", "--remove-all")

	res := r.withStdin(strings.NewReader("other password\n")).ok("key", "add")
	m := regexp.MustCompile(`saved new key with ID ([0-9a-f]{64})`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("key add: %s", res)
	}
	start := time.Now()
	res = r.run("key", "remove", m[1])
	if res.code == 0 || !strings.Contains(res.stderr, "append-only") {
		t.Errorf("key remove in append-only mode: want a failure naming append-only mode, got %s", res)
	}
	if strings.Contains(res.stderr, "retrying") || time.Since(start) > 20*time.Second {
		t.Errorf("the refusal was retried (took %v): %s", time.Since(start), res)
	}
	if _, err := os.Stat(filepath.Join(srv.DataDir, "repo", "keys", m[1])); err != nil {
		t.Errorf("the key is gone although the server refused: %v", err)
	}
	r.with("RESTIC_PASSWORD=other password").ok("snapshots")
	oracleFor(t).MustCheck(loc, true)
}

// rest-server --private-repos: a user works below /<user>/ and is refused,
// with a hint, anywhere else; nothing is retried.
func TestBackendRestPrivateRepos(t *testing.T) {
	users := map[string]string{"alice": "pw-alice", "bob": "pw-bob"}
	srv := testserver.RestServer(t, testserver.RestOptions{Users: users, PrivateRepos: true})
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	own := srv.Repo("alice", "pw-alice", "alice/repo")
	r.ok("init", "-r", own)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"f": "x"})
	r.ok("-r", own, "backup", src)

	for _, args := range [][]string{
		{"init", "-r", srv.Repo("alice", "pw-alice", "bob/repo")},
		{"-r", srv.Repo("bob", "pw-bob", "alice/repo"), "snapshots"},
	} {
		start := time.Now()
		res := r.run(args...)
		if res.code == 0 || !strings.Contains(res.stderr, "--private-repos") {
			t.Errorf("another user's repository: want a refusal hinting at --private-repos, got %s", res)
		}
		if strings.Contains(res.stderr, "retrying") || time.Since(start) > 20*time.Second {
			t.Errorf("the refusal was retried: %s", res)
		}
		if strings.Contains(res.stdout+res.stderr, "pw-") {
			t.Errorf("a password was printed: %s", res)
		}
	}
	oracleFor(t).MustCheck(own, true)
}
