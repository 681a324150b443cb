package local

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
)

// The walk visits entries in a fixed order (depth first, siblings by name)
// but does its system calls ahead of the visitor on a few worker
// goroutines: a directory is read and its entries lstat()ed in chunks, and
// directories further down the walk are prepared while the visitor is
// still busy with earlier ones. Work is prioritised by walk position, so
// workers always do first what the visitor needs first, and the amount of
// speculative work is bounded, so memory stays proportional to the
// directories on the current path plus a fixed read-ahead.

// task is one unit of work: reading a directory or stat'ing a chunk of its
// entries. Exactly one of dir and chunk is set.
type task struct {
	key   []uint32 // position in the walk; smaller runs first
	dir   *dirJob
	chunk *chunkJob
}

// before orders walk positions: component by component, a prefix (a
// directory) before what it contains.
func before(a, b []uint32) bool {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// taskQueue is a priority queue of tasks, a binary heap by walk position.
type taskQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	heap   []task
	closed bool
}

func newTaskQueue() *taskQueue {
	q := &taskQueue{}
	q.cond.L = &q.mu
	return q
}

func (q *taskQueue) push(t task) {
	q.mu.Lock()
	q.heap = append(q.heap, t)
	for i := len(q.heap) - 1; i > 0; {
		parent := (i - 1) / 2
		if !before(q.heap[i].key, q.heap[parent].key) {
			break
		}
		q.heap[i], q.heap[parent] = q.heap[parent], q.heap[i]
		i = parent
	}
	q.mu.Unlock()
	q.cond.Signal()
}

// pop waits for the most urgent task; ok is false once the queue is closed
// and empty.
func (q *taskQueue) pop() (t task, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.heap) == 0 {
		if q.closed {
			return task{}, false
		}
		q.cond.Wait()
	}
	h := q.heap
	t = h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = task{}
	h = h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && before(h[l].key, h[m].key) {
			m = l
		}
		if r < len(h) && before(h[r].key, h[m].key) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	q.heap = h
	return t, true
}

func (q *taskQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// Submission states of a dirJob.
const (
	notSubmitted int32 = iota
	submittedByWalker
	submittedAhead // speculatively, counted in pool.ahead
)

// errCancelled marks jobs skipped because the walk ended.
var errCancelled = errors.New("walk ended")

// fdSet tracks the directory descriptors the walk holds open, so that all
// of them are closed however the walk ends.
type fdSet struct {
	mu  sync.Mutex
	fds map[int]struct{}
}

func (s *fdSet) add(fd int) {
	s.mu.Lock()
	if s.fds == nil {
		s.fds = map[int]struct{}{}
	}
	s.fds[fd] = struct{}{}
	s.mu.Unlock()
}

// release closes fd once.
func (s *fdSet) release(fd int) {
	s.mu.Lock()
	_, ok := s.fds[fd]
	delete(s.fds, fd)
	s.mu.Unlock()
	if ok {
		closeFD(fd)
	}
}

func (s *fdSet) releaseAll() {
	s.mu.Lock()
	fds := s.fds
	s.fds = nil
	s.mu.Unlock()
	for fd := range fds {
		closeFD(fd)
	}
}

// pool runs the workers of one walk.
type pool struct {
	q         *taskQueue
	wg        sync.WaitGroup
	cancelled atomic.Bool
	ahead     atomic.Int64 // dirJobs submitted speculatively, not yet taken
	maxAhead  int64
	fds       fdSet
	walk      *walker
}

func newPool(w *walker, workers, readAhead int) *pool {
	p := &pool{q: newTaskQueue(), maxAhead: int64(readAhead), walk: w}
	for range workers {
		p.wg.Go(func() {
			sc := newScratch()
			for {
				t, ok := p.q.pop()
				if !ok {
					return
				}
				if t.dir != nil {
					p.runDir(t.dir, sc)
				} else {
					p.runChunk(t.chunk, sc)
				}
			}
		})
	}
	return p
}

// stop ends the workers and closes every descriptor still open. Queued
// work is skipped, not done.
func (p *pool) stop() {
	p.cancelled.Store(true)
	p.q.close()
	p.wg.Wait()
	p.fds.releaseAll()
}

// take makes sure j is being worked on, because the walk needs it now.
func (p *pool) take(j *dirJob) {
	if j.state.CompareAndSwap(notSubmitted, submittedByWalker) {
		p.q.push(task{key: j.key, dir: j})
		return
	}
	if j.state.Load() == submittedAhead {
		p.ahead.Add(-1)
	}
}

// prefetch submits j ahead of the walk if the read-ahead budget allows; it
// reports false once the budget is spent.
func (p *pool) prefetch(j *dirJob) bool {
	if p.ahead.Load() >= p.maxAhead {
		return false
	}
	if j.state.CompareAndSwap(notSubmitted, submittedAhead) {
		p.ahead.Add(1)
		p.q.push(task{key: j.key, dir: j})
	}
	return true
}

// childKey returns key + more, in a new slice.
func childKey(key []uint32, more ...uint32) []uint32 {
	return append(slices.Clip(key), more...)
}
