package rest

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		in       string
		url      string // Config.URL as sent (credentials included)
		socket   string
		location string // Config.String()
	}{
		{"rest:http://localhost:1234", "http://localhost:1234/", "", "rest:http://localhost:1234/"},
		{"rest:http://localhost:1234/", "http://localhost:1234/", "", "rest:http://localhost:1234/"},
		{"rest:https://host:8000/repo", "https://host:8000/repo/", "", "rest:https://host:8000/repo/"},
		{"rest:https://host/a/b/", "https://host/a/b/", "", "rest:https://host/a/b/"},
		{"rest:https://user:pass@host:8000/repo/", "https://user:pass@host:8000/repo/", "", "rest:https://user:***@host:8000/repo/"},
		{"rest:https://user@host/", "https://user@host/", "", "rest:https://user@host/"},
		{"rest:https://user:@host/", "https://user:@host/", "", "rest:https://user:***@host/"},
		{"rest:http://us%40er:p%3Ass@host/", "http://us%40er:p%3Ass@host/", "", "rest:http://us%40er:***@host/"},
		{"rest:http://[::1]:8000/r/", "http://[::1]:8000/r/", "", "rest:http://[::1]:8000/r/"},
		{"rest:http+unix:///tmp/rest.socket:/my_backup_repo/", "http://localhost/my_backup_repo/", "/tmp/rest.socket",
			"rest:http+unix:///tmp/rest.socket:/my_backup_repo/"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			cfg, err := ParseConfig(tc.in)
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if got := cfg.URL.String(); got != tc.url {
				t.Errorf("URL = %q, want %q", got, tc.url)
			}
			if cfg.socket != tc.socket {
				t.Errorf("socket = %q, want %q", cfg.socket, tc.socket)
			}
			if got := cfg.String(); got != tc.location {
				t.Errorf("String() = %q, want %q", got, tc.location)
			}
			if got := StripPassword(tc.in); strings.Contains(got, "pass") && !strings.Contains(tc.in, "pass@") {
				t.Errorf("StripPassword(%q) = %q", tc.in, got)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"http://host/",
		"rest:",
		"rest:localhost/",
		"rest:ftp://host/",
		"rest:http:///repo/",
		"rest:http://host/repo/?x=1",
		"rest:http://host/repo/#frag",
		"rest:http+unix:///tmp/rest.socket/",
		"rest:http://user:secret@host:99999999999/",
		"rest:http://user:secret@ho st/",
	} {
		t.Run(in, func(t *testing.T) {
			cfg, err := ParseConfig(in)
			if err == nil {
				t.Fatalf("ParseConfig(%q) = %v, want an error", in, cfg)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestStripPassword(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rest:http://hostname.foo:1234/", "rest:http://hostname.foo:1234/"},
		{"rest:http://user@hostname.foo:1234/", "rest:http://user@hostname.foo:1234/"},
		{"rest:http://user:@hostname.foo:1234/", "rest:http://user:***@hostname.foo:1234/"},
		{"rest:http://user:p@hostname.foo:1234/", "rest:http://user:***@hostname.foo:1234/"},
		{"rest:http://user:password@hostname", "rest:http://user:***@hostname"},
		{"rest:http://user:secret@ho st/x", "rest:http://user:***@ho st/x"},
		{"rest:http://user:sec%zzret@host/x", "rest:http://user:***@host/x"},
		{"local:/srv/repo", "local:/srv/repo"},
	}
	for _, tc := range tests {
		if got := StripPassword(tc.in); got != tc.want {
			t.Errorf("StripPassword(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestApplyEnvironment(t *testing.T) {
	t.Setenv("RESTIC_REST_USERNAME", "envuser")
	t.Setenv("RESTIC_REST_PASSWORD", "envsecret")

	cfg, err := ParseConfig("rest:https://host/repo/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyEnvironment()
	if got := cfg.URL.User.String(); got != "envuser:envsecret" {
		t.Errorf("user info = %q, want the environment's", got)
	}
	if got := cfg.String(); got != "rest:https://envuser:***@host/repo/" {
		t.Errorf("String() = %q", got)
	}

	// Credentials in the URL win.
	cfg, err = ParseConfig("rest:https://urluser:urlpass@host/repo/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyEnvironment()
	if got := cfg.URL.User.String(); got != "urluser:urlpass" {
		t.Errorf("user info = %q, want the URL's", got)
	}
}

func TestSetOption(t *testing.T) {
	var cfg Config
	if err := cfg.SetOption("connections", "9"); err != nil || cfg.Connections != 9 {
		t.Fatalf("SetOption(connections=9) = %v, Connections %d", err, cfg.Connections)
	}
	for _, kv := range [][2]string{{"connections", "0"}, {"connections", "many"}, {"timeout", "1s"}} {
		if err := cfg.SetOption(kv[0], kv[1]); err == nil {
			t.Errorf("SetOption(%s=%s) succeeded, want an error", kv[0], kv[1])
		}
	}
}

func TestConfigRedaction(t *testing.T) {
	cfg, err := ParseConfig("rest:https://user:s3cr3t-value@host/repo/")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, cfg); strings.Contains(out, "s3cr3t") {
			t.Errorf("%s prints the password: %s", format, out)
		}
	}
}
