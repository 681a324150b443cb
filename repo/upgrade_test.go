package repo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/mem"
)

// noReplace hides the backend's atomic replace, as REST does not have it:
// the upgrade must remove the old config before writing the new one.
type noReplace struct{ backend.Backend }

// UpgradeV2 on a backend without atomic replace: a failed write puts the
// old config back (or, when that fails too, leaves a backup and says
// where), and a successful one leaves version 2 and no backup.
func TestUpgradeV2(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	faulty := backendtest.NewFaulty(noReplace{mem.New()})
	r, err := Init(ctx, faulty, "pw", InitOptions{Version: 1, Key: testKey}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := backend.Handle{Type: backend.ConfigFile}
	raw, err := backend.LoadAll(ctx, faulty, h)
	if err != nil {
		t.Fatal(err)
	}
	version := func() uint {
		t.Helper()
		r2, err := Open(ctx, faulty, "pw", Options{})
		if err != nil {
			t.Fatal(err)
		}
		return r2.Config().Version
	}

	// The new config cannot be written: the old one goes back.
	faulty.FailNth(backendtest.OpSave, backend.ConfigFile, 1, nil)
	err = r.UpgradeV2(ctx)
	if err == nil || !strings.Contains(err.Error(), "the old config was put back") {
		t.Fatalf("upgrade with a failing save: %v", err)
	}
	if v := version(); v != 1 || r.Config().Version != 1 {
		t.Errorf("after a failed upgrade: stored version %d, in memory %d", v, r.Config().Version)
	}

	// Nor can the old one: the error names the backup, which holds it.
	faulty.Inject(backendtest.Fault{Op: backendtest.OpSave, Type: backend.ConfigFile, Times: 2})
	err = r.UpgradeV2(ctx)
	if err == nil || !strings.Contains(err.Error(), "there is a backup of the config file in "+tmp) {
		t.Fatalf("upgrade with every save failing: %v", err)
	}
	backups, _ := filepath.Glob(filepath.Join(tmp, "*", "config"))
	var kept bool
	for _, b := range backups {
		if got, err := os.ReadFile(b); err == nil && string(got) == string(raw) {
			kept = true
		}
	}
	if !kept {
		t.Errorf("no backup with the original config among %v", backups)
	}
	if err := faulty.Save(ctx, h, backend.NewByteReader(raw, false)); err != nil {
		t.Fatal(err)
	}
	for _, b := range backups {
		os.RemoveAll(filepath.Dir(b))
	}

	if err := r.UpgradeV2(ctx); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != 2 || r.Config().Version != 2 {
		t.Errorf("after the upgrade: stored version %d, in memory %d", v, r.Config().Version)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left in the temporary directory: %v", left)
	}
	if err := r.UpgradeV2(ctx); err == nil || !strings.Contains(err.Error(), "only upgrades from version 1 are supported") {
		t.Errorf("second upgrade: %v", err)
	}
}

// With atomic replace a failed write leaves the original config in place:
// UpgradeV2 must not remove it to put it back (were that save to fail too,
// the repository would have no config), and says it is unchanged.
func TestUpgradeV2AtomicFailureKeepsConfig(t *testing.T) {
	ctx := context.Background()
	t.Setenv("TMPDIR", t.TempDir())
	faulty := backendtest.NewFaulty(mem.New())
	r, err := Init(ctx, faulty, "pw", InitOptions{Version: 1, Key: testKey}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Every save of the config fails: the upgrade's and any put-back.
	faulty.Inject(backendtest.Fault{Op: backendtest.OpSave, Type: backend.ConfigFile, Times: 2})
	if err := r.UpgradeV2(ctx); err == nil || !strings.Contains(err.Error(), "the config is unchanged") {
		t.Fatalf("upgrade with failing saves: %v", err)
	}
	r2, err := Open(ctx, faulty, "pw", Options{})
	if err != nil {
		t.Fatalf("the repository no longer opens: %v", err)
	}
	if v := r2.Config().Version; v != 1 {
		t.Errorf("stored version %d, want 1", v)
	}
}
