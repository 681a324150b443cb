//go:build linux

package local_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/filter"
	"github.com/cairn-backup/cairn/sources/local"
)

// printer prints what the walk visits below dir.
type printer struct{ dir string }

func (p printer) Visit(_ context.Context, e *sources.Entry) error {
	if rel, ok := strings.CutPrefix(e.HostPath, p.dir+"/"); ok {
		fmt.Println("visit", e.Type, rel)
	}
	return nil
}

func (p printer) LeaveDir(_ context.Context, path string) error {
	if strings.HasSuffix(path, "/docs") {
		fmt.Println("leave docs")
	}
	return nil
}

// Walk a directory the way a backup does, leaving out log files.
func Example() {
	dir, err := os.MkdirTemp("", "local-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"docs/b.txt", "docs/a.txt", "docs/debug.log", "docs/sub/c.txt"} {
		p := filepath.Join(dir, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.WriteFile(p, []byte(name), 0o644)
	}

	src, err := local.New([]string{filepath.Join(dir, "docs")}, local.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	logs, err := filter.New(filter.Options{Excludes: []string{"*.log"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := src.Walk(context.Background(), sources.WalkOptions{Exclude: logs}, printer{dir}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// visit dir docs
	// visit file docs/a.txt
	// visit file docs/b.txt
	// visit dir docs/sub
	// visit file docs/sub/c.txt
	// leave docs
}
