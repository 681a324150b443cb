package location_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/cairn-backup/cairn/backend/location"
)

// A program builds its own registry with the backends it wants, then opens
// repositories by restic's location strings.
func Example() {
	reg := location.New()
	if err := location.Register(reg, location.Local()); err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "location-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	opts, err := location.ParseOptions(nil)
	if err != nil {
		log.Fatal(err)
	}
	be, err := reg.Create(context.Background(), "local:"+filepath.Join(dir, "repo"), opts)
	if err != nil {
		log.Fatal(err)
	}
	defer be.Close()
	fmt.Println(filepath.Base(be.Location()))
	fmt.Println(reg.StripPassword("rest:https://backup:hunter2@nas:8000/repo/"))
	// Output:
	// repo
	// rest:https://backup:***@nas:8000/repo/
}
