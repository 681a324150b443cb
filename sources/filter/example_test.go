package filter_test

import (
	"fmt"

	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/filter"
)

func ExampleNew() {
	f, err := filter.New(filter.Options{
		Excludes:          []string{"*.log", "!keep.log", "/var/app/cache"},
		ExcludeLargerThan: "1M",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range []sources.Entry{
		{HostPath: "/var/app/debug.log", Type: sources.File, Size: 10},
		{HostPath: "/var/app/keep.log", Type: sources.File, Size: 10},
		{HostPath: "/var/app/cache/x", Type: sources.File, Size: 10},
		{HostPath: "/var/app/db", Type: sources.File, Size: 2 << 20},
		{HostPath: "/var/app/notes", Type: sources.File, Size: 10},
	} {
		fmt.Println(e.HostPath, f.Excluded(&e))
	}
	// Output:
	// /var/app/debug.log true
	// /var/app/keep.log false
	// /var/app/cache/x true
	// /var/app/db true
	// /var/app/notes false
}
