package sshx

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// A key readable by its group (a Kubernetes Secret with fsGroup is 0440)
// loads without a warning; one that others can read, or the group can
// write, is warned about, and still used.
func TestLoadIdentityModeWarning(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(block)
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{
		{0o600, false}, {0o400, false}, {0o440, false}, {0o640, false},
		{0o644, true}, {0o604, true}, {0o444, true}, {0o660, true}, {0o606, true},
	} {
		t.Run(fmt.Sprintf("%04o", tc.mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "id_ed25519")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			var warnings []string
			id, skip, err := loadIdentity(path, true, func(f string, a ...any) {
				warnings = append(warnings, fmt.Sprintf(f, a...))
			})
			if err != nil || skip != "" || id == nil {
				t.Fatalf("loadIdentity = %v, %q, %v", id, skip, err)
			}
			warned := len(warnings) == 1 && strings.Contains(warnings[0], "accessible by other users") &&
				strings.Contains(warnings[0], fmt.Sprintf("%04o", tc.mode))
			if warned != tc.warn || (!tc.warn && len(warnings) != 0) {
				t.Errorf("warnings = %q, want a warning: %v", warnings, tc.warn)
			}
		})
	}
}
