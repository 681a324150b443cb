package sshx

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitConfigLine(t *testing.T) {
	tests := []struct {
		in   string
		kw   string
		args []string
		err  bool
	}{
		{in: "  HostName example.com", kw: "hostname", args: []string{"example.com"}},
		{in: "Port=2222", kw: "port", args: []string{"2222"}},
		{in: "Port = 2222", kw: "port", args: []string{"2222"}},
		{in: "IdentityFile \"~/my keys/id\" # a comment", kw: "identityfile", args: []string{"~/my keys/id"}},
		{in: "UserKnownHostsFile a b", kw: "userknownhostsfile", args: []string{"a", "b"}},
		{in: `User 'o\'brien'`, err: true}, // single quotes take backslashes literally
		{in: `User o\'brien`, kw: "user", args: []string{"o'brien"}},
		{in: "# only a comment"},
		{in: ""},
		{in: "HostName", err: true},
		{in: "HostName \"unterminated", err: true},
	}
	for _, tc := range tests {
		kw, args, err := splitConfigLine(tc.in)
		if (err != nil) != tc.err || kw != tc.kw || !reflect.DeepEqual(args, tc.args) {
			t.Errorf("splitConfigLine(%q) = %q, %q, %v; want %q, %q, error %v", tc.in, kw, args, err, tc.kw, tc.args, tc.err)
		}
	}
}

func TestMatchHostLine(t *testing.T) {
	tests := []struct {
		patterns []string
		host     string
		want     bool
	}{
		{[]string{"*"}, "anything", true},
		{[]string{"nas"}, "nas", true},
		{[]string{"NAS"}, "nas", true},
		{[]string{"nas"}, "nas2", false},
		{[]string{"nas?"}, "nas2", true},
		{[]string{"*.example.com"}, "a.b.example.com", true},
		{[]string{"*.example.com"}, "example.com", false},
		{[]string{"*.example.com", "!secret.example.com"}, "secret.example.com", false},
		{[]string{"!secret.example.com", "*.example.com"}, "other.example.com", true},
		{[]string{"!secret.example.com"}, "other.example.com", false}, // only negations never match
		{[]string{"10.0.*.1"}, "10.0.200.1", true},
		{[]string{"[ab]"}, "a", false}, // no character classes in ssh patterns
		{[]string{"a*b*c"}, "aXXbYYc", true},
		{[]string{"a*b*c"}, "aXXbYY", false},
	}
	for _, tc := range tests {
		if got := matchHostLine(tc.patterns, tc.host); got != tc.want {
			t.Errorf("matchHostLine(%q, %q) = %v, want %v", tc.patterns, tc.host, got, tc.want)
		}
	}
}

func TestEvaluate(t *testing.T) {
	cfg := `
User global-first
IdentityFile ~/.ssh/global

Host web* !web-internal
  HostName %h.example.com
  Port 2200
  IdentityFile ~/.ssh/web

Host *
  Port 22
  User ignored
  IdentityFile ~/.ssh/all

Match host db.example.com
  Port 5432

Match originalhost db user admin
  User never-used

Match exec "true"
  Port 1
`
	lines, err := parseConfig([]byte(cfg), "cfg", "/base", "/home/u", 0)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	warn := func(f string, a ...any) { warnings = append(warnings, f) }

	hc := evaluate(lines, matchState{originalHost: "web1", localUser: "me"}, warn)
	if got := expandHostName(hc.get("hostname"), "web1"); got != "web1.example.com" {
		t.Errorf("HostName = %q", got)
	}
	if hc.get("port") != "2200" || hc.get("user") != "global-first" {
		t.Errorf("Port, User = %q, %q; want the first values 2200, global-first", hc.get("port"), hc.get("user"))
	}
	if got := hc.all("identityfile"); !reflect.DeepEqual(got, []string{"~/.ssh/global", "~/.ssh/web", "~/.ssh/all"}) {
		t.Errorf("IdentityFile = %q, want all three in order", got)
	}
	if hc.where["port"] != "cfg:7" {
		t.Errorf("where[port] = %q, want cfg:7", hc.where["port"])
	}

	hc = evaluate(lines, matchState{originalHost: "web-internal"}, warn)
	if hc.get("hostname") != "" || hc.get("port") != "22" {
		t.Errorf("negated host: HostName %q, Port %q", hc.get("hostname"), hc.get("port"))
	}

	// "Match host" sees the HostName set so far.
	lines2, _ := parseConfig([]byte("Host db\n HostName db.example.com\nMatch host db.example.com\n Port 5432\nMatch originalhost db user admin\n User x\n"), "c2", "/", "/h", 0)
	hc = evaluate(lines2, matchState{originalHost: "db", user: "admin"}, warn)
	if hc.get("port") != "5432" || hc.get("user") != "x" {
		t.Errorf("Match: Port %q, User %q; want 5432, x", hc.get("port"), hc.get("user"))
	}
	hc = evaluate(lines2, matchState{originalHost: "db", user: "bob"}, warn)
	if hc.get("user") != "" {
		t.Errorf("Match user admin applied to bob: %q", hc.get("user"))
	}
	if len(warnings) == 0 || !strings.Contains(strings.Join(warnings, "\n"), "Match") {
		t.Errorf("no warning about the unsupported Match exec: %q", warnings)
	}
}

func TestInclude(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("conf.d/20-b.conf", "Host b\n  Port 2\n")
	write("conf.d/10-a.conf", "Host a\n  Port 1\n")
	write("config", "Include conf.d/*.conf\nHost c\n  Port 3\n")
	lines, err := readConfigFile(filepath.Join(dir, "config"), dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	for host, port := range map[string]string{"a": "1", "b": "2", "c": "3"} {
		if got := evaluate(lines, matchState{originalHost: host}, func(string, ...any) {}).get("port"); got != port {
			t.Errorf("host %s: Port %q, want %q", host, got, port)
		}
	}
	write("loop", "Include loop\n")
	if _, err := readConfigFile(filepath.Join(dir, "loop"), dir, dir); err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Errorf("recursive Include: err = %v", err)
	}
}

func TestExpandPath(t *testing.T) {
	t.Setenv("CAIRN_TEST_DIR", "/srv/keys")
	tk := tokens{home: "/home/u", host: "nas.lan", originalHost: "nas", port: "2222", remoteUser: "backup",
		localUser: "me", uid: "1000", keyAlias: "nas", localHost: "box.example.com"}
	tests := map[string]string{
		"~":                          "/home/u",
		"~/.ssh/id_%h":               "/home/u/.ssh/id_nas.lan",
		"%d/.ssh/%r@%h:%p":           "/home/u/.ssh/backup@nas.lan:2222",
		"/k/%n-%u-%i-%k-%L-%l-100%%": "/k/nas-me-1000-nas-box-box.example.com-100%",
		"${CAIRN_TEST_DIR}/id":       "/srv/keys/id",
	}
	for in, want := range tests {
		got, err := expandPath(in, tk)
		if err != nil || got != want {
			t.Errorf("expandPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"%C", "100%", "${CAIRN_UNSET_VARIABLE_X}", "${UNTERMINATED"} {
		if _, err := expandPath(bad, tk); err == nil {
			t.Errorf("expandPath(%q) succeeded, want an error", bad)
		}
	}
}

func TestApplyArgs(t *testing.T) {
	args, err := SplitArgs(`-i "/keys/my key" -p2222 -oStrictHostKeyChecking=yes -o 'UserKnownHostsFile /kh' -l bob -F /cfg -4 -Cq`)
	if err != nil {
		t.Fatal(err)
	}
	var o Options
	if err := o.ApplyArgs(args); err != nil {
		t.Fatal(err)
	}
	want := []string{`IdentityFile="/keys/my key"`, "Port=2222", "StrictHostKeyChecking=yes",
		"UserKnownHostsFile /kh", "User=bob", "AddressFamily=inet"}
	if !reflect.DeepEqual(o.ConfigOverrides, want) || o.ConfigFile != "/cfg" {
		t.Errorf("ApplyArgs: overrides %q, config file %q; want %q, /cfg", o.ConfigOverrides, o.ConfigFile, want)
	}
	// The override syntax must round-trip through the config parser.
	kw, a, err := splitConfigLine(o.ConfigOverrides[0])
	if err != nil || kw != "identityfile" || a[0] != "/keys/my key" {
		t.Errorf("override %q parses as %q %q %v", o.ConfigOverrides[0], kw, a, err)
	}
	for _, bad := range [][]string{{"-J", "bastion"}, {"-p"}, {"-p", "99999"}, {"host"}, {"-o", "NoValue"}} {
		var o Options
		if err := o.ApplyArgs(bad); err == nil {
			t.Errorf("ApplyArgs(%q) succeeded, want an error", bad)
		}
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	const fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
	for _, in := range []string{fp, fp + "=", " sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU "} {
		if got, err := normalizeFingerprint(in); err != nil || got != fp {
			t.Errorf("normalizeFingerprint(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "47DEQpj8HBSa", "MD5:00:11", "SHA256:short", "SHA256:!!!!"} {
		if _, err := normalizeFingerprint(bad); err == nil {
			t.Errorf("normalizeFingerprint(%q) succeeded", bad)
		}
	}
}
