package sftp

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Config
		err  string
	}{
		{in: "sftp://kvm1/srv/app", want: Config{Host: "kvm1", Paths: []string{"/srv/app"}}},
		{in: "sftp://root@kvm1:2222/srv/app/../data/", want: Config{User: "root", Host: "kvm1", Port: 2222, Paths: []string{"/srv/data"}}},
		{in: "sftp://[::1]:22/", want: Config{Host: "::1", Port: 22, Paths: []string{"/"}}},
		{in: "sftp://h/with%20space/%FF", want: Config{Host: "h", Paths: []string{"/with space/\xff"}}},
		{in: "sftp://h//double//slash", want: Config{Host: "h", Paths: []string{"/double/slash"}}},
		{in: "sftp://kvm1", err: "names no path"},
		{in: "sftp:///srv", err: "names no host"},
		{in: "sftp://u:pw@kvm1/srv", err: "password"},
		{in: "sftp://kvm1:99999/srv", err: "invalid port"},
		{in: "sftp://kvm1/a?b", err: `"?"`},
		{in: "sftp://kvm1/a%00b", err: "NUL"},
		{in: "sftp:kvm1:/srv", err: "want sftp://"},
		{in: "/srv/app", err: "want sftp://"},
	} {
		got, err := ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURL(%q) = %+v, %v; want an error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		tc.want.RequestsPerFile = DefaultRequestsPerFile
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		// String gives back a URL that parses to the same thing.
		again, err := ParseURL(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseURL(%q) (from %q) = %+v, %v", got.String(), tc.in, again, err)
		}
	}
}

func TestSetOption(t *testing.T) {
	var c Config
	for _, kv := range [][2]string{
		{"sftp.key", "/k"}, {"known-hosts", "/kh"}, {"sftp.host-key", "SHA256:x"}, {"password-env", "PW"},
		{"args", "-p 2"}, {"requests-per-file", "8"}, {"sftp.connections", "5"}, {"command", "ssh x"},
	} {
		if err := c.SetOption(kv[0], kv[1]); err != nil {
			t.Errorf("SetOption(%q): %v", kv[0], err)
		}
	}
	want := Config{Key: "/k", KnownHosts: "/kh", HostKey: "SHA256:x", PasswordEnv: "PW", Args: "-p 2", RequestsPerFile: 8}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("options gave %+v, want %+v", c, want)
	}
	for _, kv := range [][2]string{{"colour", "blue"}, {"requests-per-file", "0"}, {"requests-per-file", "x"}} {
		if err := c.SetOption(kv[0], kv[1]); err == nil {
			t.Errorf("SetOption(%q, %q) accepted", kv[0], kv[1])
		}
	}
}

func TestLayout(t *testing.T) {
	// describe flattens the top part: leaves as "snap=host", inner nodes
	// as "snap<info".
	var describe func(prefix string, n *vnode) []string
	describe = func(prefix string, n *vnode) []string {
		var out []string
		for _, name := range n.sortedNames() {
			c := n.children[name]
			p := strings.TrimPrefix(prefix+"/"+name, "/")
			if c.leaf() {
				out = append(out, p+"="+c.host)
				continue
			}
			out = append(out, p+"<"+c.info)
			out = append(out, describe(p, c)...)
		}
		return out
	}
	for _, tc := range []struct {
		targets []string
		want    []string
		all     bool
	}{
		{targets: []string{"/srv/app"}, want: []string{"srv</srv", "srv/app=/srv/app"}},
		{targets: []string{"/srv/b", "/etc", "/srv/a", "/srv/a"}, want: []string{"etc=/etc", "srv</srv", "srv/a=/srv/a", "srv/b=/srv/b"}},
		// A target inside another adds nothing; "/a b" sorts between them.
		{targets: []string{"/a/b", "/a b", "/a"}, want: []string{"a=/a", "a b=/a b"}},
		{targets: []string{"/srv", "/"}, all: true},
	} {
		root, all := layout(tc.targets)
		got := describe("", root)
		if all != tc.all || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("layout(%q) = %q, all=%v; want %q, all=%v", tc.targets, got, all, tc.want, tc.all)
		}
	}
}
