// Package oracle runs the real restic CLI (0.19.1, pinned in tools/restic) as
// the compatibility oracle of cairn's tests: whatever cairn writes, restic
// must read, and the other way round.
//
// A Restic value belongs to one test. Every command it runs gets the
// repository password through RESTIC_PASSWORD (never the command line), a
// cache directory private to the test, and an environment from which the
// developer's own RESTIC_* variables are removed, so a test can neither leak
// a secret into a process listing nor touch a real repository by accident.
//
// Run and RunWith return what restic printed and its exit code; they fail the
// test only when restic cannot be started. The typed helpers (Init, Backup,
// Snapshots, Ls, Restore, Check, Cat, KeyList, KeyAdd, ForgetDryRunJSON,
// RunJSON) decode restic's --json output into the structs of this package and
// fail the test when restic does, so a compatibility test reads as a list of
// steps.
package oracle
