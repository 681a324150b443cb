// Package location turns a restic repository string ("/srv/repo",
// "local:/srv/repo", "sftp:user@host:/srv/repo", "s3:https://host/bucket",
// "rest:https://user:secret@host:8000/repo/") into an open backend.
//
// The set of backends is explicit: a Registry starts empty and the program
// that builds it adds the schemes it wants with Register, so importing this
// package (or backend/local) never pulls in the SDK of a backend nobody
// registered, and nothing happens in init(). The cairn binary registers
// local, rest, sftp and s3 in one place (cmd/cairn/backends.go).
//
// Strings are parsed with restic's rules: a string that starts with a
// registered scheme and a colon belongs to that scheme; anything else that
// looks like a path ("/…", "../…", "C:\…", or text without a colon) is a
// local directory; "foo:bar" is ambiguous and refused, as restic refuses it,
// with a hint to write "local:foo:bar".
//
// Options given as restic's "-o scheme.name=value" are routed to the scheme
// named before the first dot. Options of the scheme in use are applied (an
// unknown name is an error); options of other known schemes are ignored, so
// one set of flags can serve several repositories; options naming no known
// scheme are an error, so that a typo is not silently dropped.
//
// Locations may carry secrets (a REST password in the URL). String methods
// and every error of this package print locations through the scheme's
// StripPassword, and StripPassword also redacts URL passwords of schemes
// that are not registered.
package location
