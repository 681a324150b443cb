// Package retry wraps a backend.Backend so that operations failing with a
// transient error (a dropped connection, a server answering 500, a restarted
// server) are tried again after an exponential backoff with jitter, while
// permanent errors (see backend.IsPermanent: a missing file, refused
// credentials, an append-only server refusing a delete, a full disk, a
// cancelled context) are returned at once.
//
// A server that has never answered and cannot be reached (no such host,
// connection refused) is reported at once rather than retried, unlike
// restic, which retries it for 15 minutes: a wrong host or port is the
// likelier cause. Options.RetryUnreachable restores restic's behaviour.
//
// Every operation is bounded in attempts and in total time, and waiting
// ends as soon as the caller's context does. The defaults follow restic
// 0.19: the first retry after about a second, each wait twice the one
// before with ±50% jitter, at most a minute apart, giving up after 15
// minutes.
//
// Retrying keeps the backend contract:
//
//   - Save rewinds the reader before every attempt, so each attempt sends
//     the whole file from its first byte. A backend that cannot replace
//     files atomically gets the file removed after a failed attempt, since
//     the failure may have come after the file was stored. If such a
//     backend also refuses to delete (rest-server --append-only), a retry
//     that is refused because the file exists with the right size counts
//     as done: every name but the config's is the SHA-256 of the content.
//   - Load calls the consumer again from the start of the range with a
//     fresh reader; the backend contract requires consumers to be
//     idempotent, and no consumer ever sees bytes of an earlier attempt.
//     An error the consumer returns on its own, without a failed read
//     before it, is its verdict on the data (a bad MAC, a wrong hash) and
//     is returned without retrying: fetching the same bytes again would not
//     change them.
//   - List reports each file once, even when a listing is restarted.
//
// Each retry, each give-up after retries and each success after retries is
// reported to an optional callback as an Event whose String is restic's
// message ("Save(<data/0123456789>) returned error, retrying after 1.2s:
// …"). The messages hold only what the wrapped backend's errors hold, and
// those never contain a password.
package retry
