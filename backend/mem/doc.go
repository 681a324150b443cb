// Package mem is a thread-safe in-memory backend.
//
// It exists for unit tests of the layers above the backend (repository,
// index, pipelines): it is fast, needs no cleanup and behaves like the real
// backends where it matters — Save is atomic and copies the caller's bytes,
// a missing file is fs.ErrNotExist, a ranged read past the end wraps
// backend.ErrShortRead, and cancelled contexts are honoured. It passes the
// backendtest conformance suite, but tests must not rely on it alone: the
// local backend and the remote backends have their own runs of that suite.
package mem
