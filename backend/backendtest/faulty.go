package backendtest

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cairn-backup/cairn/backend"
)

// ErrInjected is the error a Fault reports when it names none.
var ErrInjected = errors.New("backendtest: injected fault")

// Op names the Backend method a Fault applies to.
type Op uint8

// The operations a Fault can strike.
const (
	OpSave Op = iota + 1
	OpLoad
	OpStat
	OpRemove
	OpList
)

// String returns the lowercase method name ("save", "load", …).
func (o Op) String() string {
	switch o {
	case OpSave:
		return "save"
	case OpLoad:
		return "load"
	case OpStat:
		return "stat"
	case OpRemove:
		return "remove"
	case OpList:
		return "list"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// When says at which point of a call a Fault strikes.
type When uint8

const (
	// Before fails the call without passing it on: the inner backend is
	// not touched.
	Before When = iota
	// After passes the call on and reports the error although it succeeded,
	// like a response lost on its way back: a Save is stored, a Remove is
	// done, Load's callback has run. Retry logic must cope with both.
	After
	// MidStream breaks the data half way. For Save the inner backend reads
	// a stream that fails after half of the bytes (every pass, so retries
	// fail too), which exercises its cleanup of partial uploads; for Load
	// the callback gets a reader that fails after half of the range. For
	// Stat, Remove and List it acts like Before.
	MidStream
)

// A Fault describes failures of one kind of call. A call matches when its
// operation equals Op, and Type and Name (where set) equal the handle's.
// Counting matching calls from the moment the fault is injected, the fault
// lets Skip of them through and then fails Times of them (every later one
// when Times is 0).
type Fault struct {
	Op   Op
	Type backend.FileType // backend.InvalidFile matches every type
	Name string           // "" matches every name; ignored for OpList
	Skip int
	// Times is how many calls fail once Skip calls have passed; 0 means all.
	Times int
	When  When
	// Err is the error returned (wrapped with the operation and handle);
	// nil means ErrInjected.
	Err error
}

type faultState struct {
	Fault
	seen int
}

// fileKey names a file the way backends do: without IsMetadata, and with the
// config's name ignored.
type fileKey struct {
	t    backend.FileType
	name string
}

func keyOf(h backend.Handle) fileKey {
	if h.Type == backend.ConfigFile {
		return fileKey{t: h.Type}
	}
	return fileKey{t: h.Type, name: h.Name}
}

type callKey struct {
	op Op
	t  backend.FileType
}

// Faulty wraps a Backend and injects failures into it, for tests of the
// layers above (retries, error messages, "never make a repository worse").
// Without faults it behaves exactly like the wrapped backend and passes the
// conformance suite. All methods are safe for concurrent use; faults can be
// added while other goroutines use the backend.
//
// Two kinds of faults exist. Call faults (Inject) make calls fail: the third
// pack upload, every index load, a Remove whose response is lost. Data
// faults change what is read until Reset: Corrupt flips a byte, Truncate
// cuts a file short, Vanish and VanishAfterList make a file disappear. Data
// faults never touch the inner backend's data, so Reset restores the
// original state.
type Faulty struct {
	inner backend.Backend

	mu       sync.Mutex
	faults   []*faultState
	corrupt  map[fileKey][]int64
	truncate map[fileKey]int64
	vanished map[fileKey]bool
	// vanishOnList holds files that disappear once a List has reported them.
	vanishOnList map[fileKey]bool
	calls        map[callKey]int
}

// Compile-time checks: Faulty passes capabilities through.
var (
	_ backend.Backend  = (*Faulty)(nil)
	_ backend.Creator  = (*Faulty)(nil)
	_ backend.Replacer = (*Faulty)(nil)
)

// NewFaulty returns a Faulty around inner with no faults.
func NewFaulty(inner backend.Backend) *Faulty {
	f := &Faulty{inner: inner}
	f.resetLocked()
	return f
}

// Unwrap returns the wrapped backend, for checks that must bypass faults.
func (f *Faulty) Unwrap() backend.Backend { return f.inner }

// Inject adds a call fault. Faults are checked in the order they were added;
// the first that strikes decides the outcome of a call.
func (f *Faulty) Inject(fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, &faultState{Fault: fault})
}

// FailNth makes the nth call of op on files of type t (counted from 1, from
// now on) fail with err, or ErrInjected when err is nil, without reaching the
// wrapped backend. backend.InvalidFile counts calls of every type.
func (f *Faulty) FailNth(op Op, t backend.FileType, n int, err error) {
	f.Inject(Fault{Op: op, Type: t, Skip: max(n-1, 0), Times: 1, Err: err})
}

// Corrupt makes every later Load of h return the byte at offset (counted
// from the start of the file) with all its bits flipped, when the loaded
// range covers it. Stat and List are unaffected, as with real bit rot.
func (f *Faulty) Corrupt(h backend.Handle, offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(h)
	if !slices.Contains(f.corrupt[k], offset) {
		f.corrupt[k] = append(f.corrupt[k], offset)
	}
}

// Truncate makes h look size bytes long to Load, Stat and List, as after a
// crash that lost the end of a file. A size beyond the real end has no
// effect.
func (f *Faulty) Truncate(h backend.Handle, size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.truncate[keyOf(h)] = max(size, 0)
}

// Vanish makes h disappear now: Stat, Load and Remove report fs.ErrNotExist
// and List skips it, as if another client had deleted it. A later
// successful Save of h brings it back.
func (f *Faulty) Vanish(h backend.Handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vanished[keyOf(h)] = true
}

// VanishAfterList makes h disappear as soon as a List has reported it, the
// race in which a concurrent prune deletes a pack between a list and a load.
func (f *Faulty) VanishAfterList(h backend.Handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vanishOnList[keyOf(h)] = true
}

// Reset removes every fault and zeroes the call counters.
func (f *Faulty) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resetLocked()
}

func (f *Faulty) resetLocked() {
	f.faults = nil
	f.corrupt = make(map[fileKey][]int64)
	f.truncate = make(map[fileKey]int64)
	f.vanished = make(map[fileKey]bool)
	f.vanishOnList = make(map[fileKey]bool)
	f.calls = make(map[callKey]int)
}

// Calls returns how many calls of op on files of type t were made since the
// Faulty was made or Reset, failed ones included. backend.InvalidFile counts
// calls of every type.
func (f *Faulty) Calls(op Op, t backend.FileType) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t != backend.InvalidFile {
		return f.calls[callKey{op, t}]
	}
	n := 0
	for k, c := range f.calls {
		if k.op == op {
			n += c
		}
	}
	return n
}

// begin counts a call and returns the fault that strikes it, if any.
func (f *Faulty) begin(op Op, h backend.Handle) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[callKey{op, h.Type}]++
	var strike *Fault
	for _, st := range f.faults {
		if st.Op != op || st.Type != backend.InvalidFile && st.Type != h.Type {
			continue
		}
		if op != OpList && st.Name != "" && keyOf(h) != keyOf(backend.Handle{Type: h.Type, Name: st.Name}) {
			continue
		}
		st.seen++
		fires := st.seen > st.Skip && (st.Times == 0 || st.seen <= st.Skip+st.Times)
		if fires && strike == nil {
			strike = &st.Fault
		}
	}
	if strike == nil {
		return nil
	}
	c := *strike
	return &c
}

// injected returns the error a fault reports for op on h.
func injected(fault *Fault, op Op, h backend.Handle) error {
	err := fault.Err
	if err == nil {
		err = ErrInjected
	}
	return fmt.Errorf("faulty: %v %v: %w", op, h, err)
}

// dataFaults returns the data faults that apply to h.
func (f *Faulty) dataFaults(h backend.Handle) (vanished bool, truncSize int64, truncated bool, corrupt []int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := keyOf(h)
	truncSize, truncated = f.truncate[k]
	return f.vanished[k], truncSize, truncated, slices.Clone(f.corrupt[k])
}
