package main

import (
	"net"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testserver"
)

// A password in a REST location never appears in anything cairn prints,
// text or JSON, whatever happens: success, missing repository, wrong
// password, unreachable server, bad URL.
func TestLocationPasswordNeverPrinted(t *testing.T) {
	const secret = "Sup3r-Secret-Pw"
	srv := testserver.RestServer(t, testserver.RestOptions{Users: map[string]string{"alice": secret}})
	loc := srv.Repo("alice", secret, "repo")
	r := newRunner(t).with("RESTIC_PASSWORD=" + testPassword)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"file.txt": "content"})

	check := func(res result) {
		t.Helper()
		if strings.Contains(res.stdout+res.stderr, secret) {
			t.Errorf("the location's password was printed:\n%s", res)
		}
	}

	// Missing repository: exit 10, the location is named, redacted.
	res := r.expect(exitNoRepository, "-r", loc, "snapshots")
	check(res)
	if !strings.Contains(res.stderr, "alice:***@") {
		t.Errorf("the redacted location is not named:\n%s", res)
	}
	check(r.expect(exitNoRepository, "--json", "-r", loc, "snapshots"))

	res = r.ok("init", "--json", "-r", loc)
	check(res)
	msgs := jsonLines(t, res.stdout)
	if len(msgs) != 1 || !strings.Contains(msgs[0]["repository"].(string), "alice:***@") {
		t.Errorf("init --json repository field: %v", msgs)
	}
	check(r.ok("init", "-r", srv.Repo("alice", secret, "second")))
	check(r.ok("-r", loc, "backup", src))
	check(r.ok("-r", loc, "--json", "backup", src))
	check(r.ok("-r", loc, "-v", "snapshots"))
	check(r.ok("-r", loc, "--json", "ls", "latest"))
	check(r.with("RESTIC_PASSWORD=wrong").expect(exitWrongPassword, "-r", loc, "snapshots"))
	check(r.with("RESTIC_REPOSITORY=" + loc).ok("snapshots"))
	check(r.ok("--repository-file", writeFile(t, loc+"\n"), "snapshots"))

	// The server refuses a wrong user password: the message must not
	// show either password.
	wrongUser := srv.Repo("alice", secret+"x", "repo")
	res = r.run("-r", wrongUser, "snapshots")
	check(res)
	if res.code == 0 || strings.Contains(res.stdout+res.stderr, secret+"x") {
		t.Errorf("wrong server password: %s", res)
	}

	// Unreachable server and unparsable URLs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, bad := range []string{
		"rest:http://alice:" + secret + "@" + closed + "/repo/",
		"rest:http://alice:" + secret + "@127.0.0.1:99999/repo/",
		"rest:ftp://alice:" + secret + "@host/repo/",
		"s3:https://key:" + secret + "@host/bucket",
		"b2:alice:" + secret + "@bucket",
	} {
		for _, json := range []bool{false, true} {
			args := []string{"-r", bad, "snapshots"}
			if json {
				args = append([]string{"--json"}, args...)
			}
			res := r.run(args...)
			if res.code == 0 {
				t.Errorf("%v succeeded", args)
			}
			check(res)
		}
	}
}
