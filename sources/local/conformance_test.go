//go:build linux

package local_test

import (
	"testing"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/local"
	"github.com/cairn-backup/cairn/sources/sourcetest"
)

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{
		Open: func(t *testing.T, dir string) sources.Source {
			src, err := local.New([]string{dir}, local.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
	})
}
