// Package charttest tests the Helm chart in charts/cairn: it renders the
// chart with the helm binary pinned in tools/helm, decodes every manifest
// strictly into k8s.io/api types (an unknown or misspelt field fails),
// asserts the chart's promises (security posture, schedules, read-only
// sources, hook annotations, secret handling, NetworkPolicy rules), and has
// a real kube-apiserver (tools/kube-apiserver, with etcd from tools/etcd)
// accept every rendered value set, including a namespace that enforces the
// "restricted" Pod Security Standard.
//
// It is a module of its own so that the k8s.io modules stay out of the
// library's go.mod, and it does not import the main module, so a change of
// the library's dependencies never breaks its go.sum. Tools are found and
// built through scripts/build-tool with the same policy as
// internal/testtools: with CI=true a missing tool fails the test.
//
// Run it from this directory: go test ./...
package charttest
