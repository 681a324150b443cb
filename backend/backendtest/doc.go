// Package backendtest is the conformance suite that every backend.Backend
// implementation runs, plus tools for testing the layers above a backend.
//
// A backend package tests itself with one call:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backend.Backend {
//			be, err := local.Create(t.Context(), t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { _ = be.Close() })
//			return be
//		})
//	}
//
// Run holds an explicit list of subtests; each gets a fresh, empty backend,
// so a failure names the behaviour that broke and never depends on what an
// earlier subtest left behind. The suite checks the contract written on
// backend.Backend: atomic saves (a failed, short or cancelled Save leaves
// nothing visible), exact ranged reads (a range past the end wraps
// backend.ErrShortRead), fs.ErrNotExist for missing files, listing by type
// across the data/XX directories, refusal of names that could escape the
// layout, and safe concurrent use.
//
// Backends that take a password in their configuration should use one that
// contains PasswordMarker in their test setup; the suite then proves that
// neither Location nor the errors it provokes reveal it.
//
// Faulty wraps any backend and injects failures on demand (the Nth save of a
// pack fails, a load returns a flipped byte or a truncated file, a file
// vanishes after it was listed), so repository tests can prove that every
// fault gives a clear error and never makes a repository worse. Random and
// HandleFor make deterministic test data.
package backendtest
