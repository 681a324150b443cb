package s3

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		in   string
		want Config
		loc  string
	}{
		{"s3://eu-central-1/bucketname", Config{Endpoint: "eu-central-1", Bucket: "bucketname"}, "s3:https://eu-central-1/bucketname"},
		{"s3://eu-central-1/bucketname/", Config{Endpoint: "eu-central-1", Bucket: "bucketname"}, "s3:https://eu-central-1/bucketname"},
		{"s3://eu-central-1/bucketname/prefix/directory", Config{Endpoint: "eu-central-1", Bucket: "bucketname", Prefix: "prefix/directory"}, ""},
		{"s3:eu-central-1/foobar/prefix/directory/", Config{Endpoint: "eu-central-1", Bucket: "foobar", Prefix: "prefix/directory"}, ""},
		{"s3:hostname.foo/foobar", Config{Endpoint: "hostname.foo", Bucket: "foobar"}, "s3:https://hostname.foo/foobar"},
		{"s3:s3.amazonaws.com/bucket", Config{Endpoint: "s3.amazonaws.com", Bucket: "bucket"}, "s3:https://s3.amazonaws.com/bucket"},
		{"s3:hostname.foo/foobar/a//b/", Config{Endpoint: "hostname.foo", Bucket: "foobar", Prefix: "a/b"}, "s3:https://hostname.foo/foobar/a/b"},
		{"s3:https://hostname/foobar", Config{Endpoint: "hostname", Bucket: "foobar"}, ""},
		{"s3:https://hostname:9999/foobar/", Config{Endpoint: "hostname:9999", Bucket: "foobar"}, "s3:https://hostname:9999/foobar"},
		{"s3:http://hostname:9999/foobar", Config{Endpoint: "hostname:9999", Bucket: "foobar", UseHTTP: true}, "s3:http://hostname:9999/foobar"},
		{"s3:http://hostname:9999/bucket/prefix/directory/", Config{Endpoint: "hostname:9999", Bucket: "bucket", Prefix: "prefix/directory", UseHTTP: true},
			"s3:http://hostname:9999/bucket/prefix/directory"},
		{"s3:http://127.0.0.1:9000/b/p", Config{Endpoint: "127.0.0.1:9000", Bucket: "b", Prefix: "p", UseHTTP: true}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseConfig(tc.in)
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tc.want) {
				t.Errorf("ParseConfig =\n%#v\nwant\n%#v", got, tc.want)
			}
			if tc.loc != "" && got.String() != tc.loc {
				t.Errorf("String() = %q, want %q", got.String(), tc.loc)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, in := range []string{
		"", "s3", "s3:", "s3://", "s3:///bucket/prefix", "s3:////", "s3:host", "s3:host/",
		"s3:http://host", "s3:https://host/", "s3:http://key:secret@host/bucket",
		"s3:key:secret@host/bucket", "s3:http://host/bucket?x=1", "gs:bucket/prefix",
		"s3:host/bucket/..", "s3:host/bucket/../x",
	} {
		t.Run(in, func(t *testing.T) {
			cfg, err := ParseConfig(in)
			if err == nil {
				t.Fatalf("ParseConfig(%q) = %v, want an error", in, cfg)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error reveals the secret: %v", err)
			}
		})
	}
}

func TestConfigRedaction(t *testing.T) {
	cfg := Config{Endpoint: "h", Bucket: "b", KeyID: "AKID", Secret: "s3cr3t-value", SessionToken: "t0ken-value"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, cfg)
		if strings.Contains(out, "s3cr3t") || strings.Contains(out, "t0ken") {
			t.Errorf("%s prints a secret: %s", format, out)
		}
	}
	if !strings.Contains(fmt.Sprintf("%#v", cfg), `Secret: "***"`) {
		t.Errorf("%%#v does not mark the secret as set: %#v", cfg)
	}
}

func TestApplyEnvironment(t *testing.T) {
	t.Setenv("AWS_DEFAULT_REGION", "eu-west-3")
	cfg := Config{}
	cfg.ApplyEnvironment()
	if cfg.Region != "eu-west-3" {
		t.Errorf("Region = %q, want AWS_DEFAULT_REGION", cfg.Region)
	}
	cfg = Config{Region: "us-west-2"}
	cfg.ApplyEnvironment()
	if cfg.Region != "us-west-2" {
		t.Errorf("Region = %q, an explicit region must win", cfg.Region)
	}
}

func TestUseStorageClass(t *testing.T) {
	data := backend.Handle{Type: backend.PackFile, Name: "aa"}
	tree := backend.Handle{Type: backend.PackFile, Name: "bb", IsMetadata: true}
	index := backend.Handle{Type: backend.IndexFile, Name: "cc"}
	config := backend.Handle{Type: backend.ConfigFile}
	tests := []struct {
		class string
		h     backend.Handle
		want  bool
	}{
		{"STANDARD_IA", data, true},
		{"STANDARD_IA", tree, true},
		{"STANDARD_IA", index, true},
		{"STANDARD_IA", config, true},
		{"GLACIER", data, true},
		{"GLACIER", tree, false},
		{"GLACIER", index, false},
		{"DEEP_ARCHIVE", config, false},
		{"DEEP_ARCHIVE", data, true},
	}
	for _, tc := range tests {
		if got := useStorageClass(tc.class, tc.h); got != tc.want {
			t.Errorf("useStorageClass(%s, %v metadata=%v) = %v, want %v", tc.class, tc.h, tc.h.IsMetadata, got, tc.want)
		}
	}
}

func TestSetOption(t *testing.T) {
	var cfg Config
	for _, kv := range [][2]string{
		{"connections", "8"}, {"retries", "3"}, {"region", "eu-west-1"}, {"bucket-lookup", "PATH"},
		{"storage-class", "STANDARD_IA"}, {"list-objects-v1", "true"}, {"unsafe-anonymous-auth", "1"},
	} {
		if err := cfg.SetOption(kv[0], kv[1]); err != nil {
			t.Fatalf("SetOption(%s=%s): %v", kv[0], kv[1], err)
		}
	}
	want := Config{Connections: 8, MaxRetries: 3, Region: "eu-west-1", BucketLookup: "path",
		StorageClass: "STANDARD_IA", ListObjectsV1: true, UnsafeAnonymousAuth: true}
	if fmt.Sprintf("%#v", cfg) != fmt.Sprintf("%#v", want) {
		t.Errorf("after SetOption:\n%#v\nwant\n%#v", cfg, want)
	}
	for _, kv := range [][2]string{
		{"connections", "0"}, {"connections", "x"}, {"retries", "-1"}, {"bucket-lookup", "virtual"},
		{"list-objects-v1", "maybe"}, {"enable-restore", "true"}, {"layout", "default"}, {"nosuch", "1"},
	} {
		if err := cfg.SetOption(kv[0], kv[1]); err == nil {
			t.Errorf("SetOption(%s=%s) succeeded, want an error", kv[0], kv[1])
		}
	}
}
