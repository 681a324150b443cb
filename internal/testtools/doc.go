// Package testtools gives tests access to the external tools the project
// pins under tools/ (restic, rest-server, S3 servers, …) and a single policy
// for what happens when one is missing: with CI=true the test fails, anywhere
// else it is skipped with the reason. A missing tool must never make a CI run
// look green.
//
// Tools are built by scripts/build-tool into a cache outside the clone
// (${CAIRN_TOOLS_CACHE:-$HOME/.cache/cairn-tools}/NAME-VERSION/BIN), so a
// fresh clone on a machine that already built them pays nothing. The cache
// is resolved once when the test binary starts (see CacheDir), so a test that
// sets HOME to a temporary directory still finds the built tools.
package testtools
