// Package repair mends damaged repositories the way restic's `repair index`
// and `repair snapshots` do, so that restic and cairn agree on the result:
// Index rebuilds the index from the index files that still load and the
// pack headers, Snapshots rewrites snapshots whose trees reference missing
// blobs or unreadable subtrees.
//
// Both need the exclusive lock (except Snapshots with DryRun) and report
// what they do through a Printer, in restic's words.
package repair

// Printer receives messages: P for normal output, E for warnings (stderr in
// the CLI), V and VV for -v and -vv. Messages carry no trailing newline.
// A nil Printer discards everything.
type Printer interface {
	P(format string, args ...any)
	E(format string, args ...any)
	V(format string, args ...any)
	VV(format string, args ...any)
}

type discard struct{}

func (discard) P(string, ...any)  {}
func (discard) E(string, ...any)  {}
func (discard) V(string, ...any)  {}
func (discard) VV(string, ...any) {}

func orDiscard(p Printer) Printer {
	if p == nil {
		return discard{}
	}
	return p
}
