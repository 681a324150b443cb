// Package rest stores a repository on a server that speaks restic's REST
// protocol: restic's rest-server, rclone serve restic, and compatible
// servers.
//
// The client side follows restic 0.19 request for request (spec §1.5): it
// asks for protocol v2 and falls back to v1 listings (names only, sizes by
// HEAD) when the server answers in v1; every GET carries a Range header and
// the answer's length is checked; a 404 on a listing means an empty
// directory; pack files have no data/XX subdirectory in URLs; a repository
// is created with POST ?create=true.
//
// Locations look like restic's:
//
//	rest:https://user:password@host:8000/repo/
//	rest:http://host:8000/
//	rest:http+unix:///run/rest.socket:/repo/
//
// Credentials in the URL become HTTP basic authentication. They never show
// up in Location, Config.String or any error: requests are sent to URLs
// without userinfo and the Authorization header carries the password.
//
// Open takes an optional http.RoundTripper; without one it builds a
// transport from the Config, with custom root CAs and a client certificate
// when they are set. Connecting is bounded (30 s to dial, 10 s for the TLS
// handshake); everything after that is bounded by the caller's context, as
// an upload of a large pack may rightly take long. An upload stops sending
// as soon as its context ends, so a cancelled Save cannot complete behind
// the caller's back. A request that makes no progress for
// Config.StuckRequestTimeout (5 minutes) fails with a transient error, so a
// server that hangs mid-transfer cannot hang the caller. The backend does
// not retry: a retrying wrapper (backend/retry) decides that from
// StatusError.Permanent and the error's cause (backend.IsPermanent).
package rest
