package location_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtools"
)

// Importing the registry and the local backend must not drag in the SDKs of
// other backends: a program that only wants local repositories stays small.
func TestNoHeavyDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		testtools.Unavailable(t, "go tool not in PATH: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps",
		"github.com/cairn-backup/cairn/backend/location",
		"github.com/cairn-backup/cairn/backend/local").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list printed too little to be believed: %q", out)
	}
	for _, d := range deps {
		for _, banned := range []string{"github.com/minio/", "github.com/pkg/sftp", "golang.org/x/crypto/ssh", "net/http"} {
			if strings.HasPrefix(d, banned) {
				t.Errorf("backend/location + backend/local import %s", d)
			}
		}
	}
}
