package retry_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/backendtest"
	"github.com/cairn-backup/cairn/backend/mem"
	"github.com/cairn-backup/cairn/backend/retry"
)

// A backend whose first two uploads fail: the retrying wrapper stores the
// file on the third attempt and reports each step.
func Example() {
	flaky := backendtest.NewFaulty(mem.New())
	flaky.Inject(backendtest.Fault{Op: backendtest.OpSave, Times: 2})

	be := retry.New(flaky, retry.Options{
		InitialDelay: 10 * time.Millisecond,
		Report: func(e retry.Event) {
			// e.String() is restic's message; the wait is random, so this
			// example prints the parts that are not.
			if e.Err != nil {
				fmt.Printf("%s: attempt %d failed, retrying\n", e.Op, e.Attempt)
			} else {
				fmt.Printf("%s: attempt %d succeeded\n", e.Op, e.Attempt)
			}
		},
	})
	data := []byte("hello")
	h := backend.Handle{Type: backend.SnapshotFile, Name: "6d0f2a0a1bd32e8c8b0f6e9a8c9d0b1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c"}
	err := be.Save(context.Background(), h, backend.NewByteReader(data, false))
	fmt.Println("saved:", err == nil)
	// Output:
	// Save(<snapshot/6d0f2a0a1b>): attempt 1 failed, retrying
	// Save(<snapshot/6d0f2a0a1b>): attempt 2 failed, retrying
	// Save(<snapshot/6d0f2a0a1b>): attempt 3 succeeded
	// saved: true
}
