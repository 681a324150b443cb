package stdin_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/cairn-backup/cairn/sources/stdin"
)

// A database dump piped into the backup becomes one file in the snapshot;
// hand the source to backup.Run like any other.
func Example() {
	src, err := stdin.New(strings.NewReader("CREATE TABLE t (x int);\n"), stdin.Options{Filename: "db/dump.sql"})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	fmt.Println(src.Info().Paths, src.Info().Streamed)
	// Output: [/db/dump.sql] true
}
