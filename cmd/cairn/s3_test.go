package main

import (
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testserver"
)

// The binary reaches an S3 repository with restic's syntax and
// environment: credentials from AWS_*, the server's CA from --cacert or
// RESTIC_CACERT, -o s3.* options routed to the S3 backend. The secret key
// is never printed.
func TestS3Repository(t *testing.T) {
	const marker = "S3cretMarker"
	srv := testserver.S3Server(t, testserver.Versitygw, testserver.S3Options{TLS: true, SecretKey: marker + "0123456789abcdef"})
	loc := srv.Repo("cairn-cli", "repo")
	r := newRunner(t).with(
		"RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+loc,
		"AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "AWS_DEFAULT_REGION="+srv.Region)
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.txt": "over s3\n"})
	check := func(res result) result {
		t.Helper()
		if strings.Contains(res.stdout+res.stderr, marker) {
			t.Errorf("the S3 secret was printed:\n%s", res)
		}
		return res
	}

	// Without the CA the server's certificate is not trusted.
	res := check(r.run("-o", "s3.bucket-lookup=path", "init"))
	if res.code == 0 || !strings.Contains(strings.ToLower(res.stderr), "certificate") {
		t.Errorf("init without --cacert:\n%s", res)
	}
	check(r.ok("--cacert", srv.CA.CertFile, "-o", "s3.bucket-lookup=path", "init"))
	withCA := r.with("RESTIC_CACERT=" + srv.CA.CertFile)
	check(withCA.ok("-o", "s3.bucket-lookup=path", "backup", src))
	var sns []map[string]any
	decode(t, check(withCA.ok("-o", "s3.bucket-lookup=path", "snapshots", "--json")).stdout, &sns)
	if len(sns) != 1 {
		t.Fatalf("%d snapshots", len(sns))
	}
	res = check(withCA.run("-o", "s3.bucket-lookup=sideways", "snapshots"))
	if res.code != 1 || !strings.Contains(res.stderr, "bucket-lookup") {
		t.Errorf("bad s3 option:\n%s", res)
	}
	check(withCA.with("AWS_SECRET_ACCESS_KEY="+marker+"-wrong").run("-o", "s3.bucket-lookup=path", "snapshots"))
}
