// Package chartrun runs the jobs that the Helm chart in charts/cairn
// renders, for real: its tests take a rendered pod's arguments, environment,
// Secret and ConfigMap files and emptyDirs, lay them out in a root
// directory exactly at the paths the manifest mounts them, and execute the
// static cairn binary there (chroot, as the pod's non-root user) against a
// real S3 server and a real sshd on 127.0.0.1. restic then reads what the
// jobs wrote.
//
// The package has no code of its own outside its tests; it lives in the
// main module so that it can use the shared test servers and the restic
// oracle. Rendering and API validation are internal/charttest's.
package chartrun
