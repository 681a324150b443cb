package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestKeyCommands(t *testing.T) {
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	o := oracleFor(t)

	// list: the same bytes as restic, JSON and table.
	for _, args := range [][]string{{"key", "list", "--json"}, {"key", "list"}} {
		if mine, theirs := r.ok(args...).stdout, string(o.MustRun(dir, args...).Stdout); mine != theirs {
			t.Errorf("%v differs from restic's\ncairn:\n%s\nrestic:\n%s", args, mine, theirs)
		}
	}

	// add: the new password comes from a file, trimmed like a password
	// file; the key works for restic too.
	newPw := "second password"
	res := r.ok("key", "add", "--new-password-file", writeFile(t, "\xef\xbb\xbf"+newPw+"\n"), "--user", "bob", "--host", "laptop")
	m := regexp.MustCompile(`saved new key with ID ([0-9a-f]{64})`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("key add output:\n%s", res)
	}
	added := m[1]
	var keys []keyListJSON
	decode(t, r.with("RESTIC_PASSWORD="+newPw).ok("key", "list", "--json").stdout, &keys)
	found := false
	for _, k := range keys {
		if k.ID == added {
			found = true
			if !k.Current || k.UserName != "bob" || k.HostName != "laptop" {
				t.Errorf("added key listed as %+v", k)
			}
		}
	}
	if len(keys) != 2 || !found {
		t.Fatalf("keys after add: %+v", keys)
	}
	o.WithPassword(newPw).MustRun(dir, "snapshots")

	// add from a pipe: the first line of stdin.
	res = r.withStdin(strings.NewReader("third\n")).ok("key", "add")
	if !strings.Contains(res.stdout, "saved new key with ID") {
		t.Errorf("%s", res)
	}
	r.with("RESTIC_PASSWORD=third").ok("snapshots")
	if res := r.withStdin(strings.NewReader("\n")).run("key", "add"); res.code != 1 || !strings.Contains(res.stderr, "empty password") {
		t.Errorf("empty new password: %s", res)
	}

	// remove: not the current key; a prefix is enough.
	if res := r.with("RESTIC_PASSWORD="+newPw).run("key", "remove", added[:12]); res.code != 1 || !strings.Contains(res.stderr, "currently used") {
		t.Errorf("removing the current key: %s", res)
	}
	r.ok("key", "remove", added[:12])
	r.with("RESTIC_PASSWORD="+newPw).expect(exitWrongPassword, "snapshots")

	// passwd: the new password works, the old one no longer does.
	res = r.ok("key", "passwd", "--new-password-file", writeFile(t, "changed\n"))
	if !strings.Contains(res.stdout, "saved new key as") {
		t.Errorf("%s", res)
	}
	r.with("RESTIC_PASSWORD=changed").ok("snapshots")
	r.expect(exitWrongPassword, "snapshots")
	o.WithPassword("changed").MustRun(dir, "check")
	decode(t, r.with("RESTIC_PASSWORD=changed").ok("key", "list", "--json").stdout, &keys)
	if len(keys) != 2 { // "third" and "changed"
		t.Errorf("keys after passwd: %+v", keys)
	}
	for _, bad := range [][]string{{"key", "list", "x"}, {"key", "remove"}, {"key", "add", "x"}} {
		if res := r.with("RESTIC_PASSWORD=changed").run(bad...); res.code != 1 {
			t.Errorf("%v: %s", bad, res)
		}
	}
}
