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

func ExampleParseSize() {
	for _, s := range []string{"2048", "10k", "20M", "1G"} {
		n, _ := filter.ParseSize(s)
		fmt.Println(s, n)
	}
	// Output:
	// 2048 2048
	// 10k 10240
	// 20M 20971520
	// 1G 1073741824
}
