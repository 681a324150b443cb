//go:build cairn_testkdf

package repo

import "github.com/cairn-backup/cairn/crypto"

// A binary built with -tags cairn_testkdf derives new keys with
// crypto.TestParams instead of calibrating scrypt for half a second: the
// crash tests (cmd/cairn/crash_test.go) run `key add` and `key passwd`
// hundreds of times. Never for real use: such keys are cheap to attack.
func init() { defaultKeyParams = &crypto.TestParams }
