// Package testserver starts the real servers cairn's remote backends are
// tested against — restic's rest-server and the S3 servers versitygw and
// MinIO — as child processes on 127.0.0.1, each on a free port with its own
// temporary data directory, and waits until they answer.
//
// The binaries come from internal/testtools (built from tools/NAME/go.mod
// into a cache outside the clone). A tool that cannot be built follows the
// testtools policy: the test fails when CI=true and is skipped elsewhere. A
// server that was built but does not start is always a test failure, with
// the tail of its log in the message: it is a real problem, never a reason
// to skip.
//
// Every server is stopped (SIGTERM, then SIGKILL after a grace period) by
// t.Cleanup. Secrets never appear on a command line: S3 keys reach the
// servers through their environment, rest-server users through an
// htpasswd file.
package testserver
