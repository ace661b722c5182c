// Package testnet provides network-namespace helpers for netbridge's
// end-to-end tests: throw-away named network namespaces, veth pairs,
// addresses, routes and neighbours, canonical before/after snapshots of a
// namespace, an ICMP pinger that runs inside a namespace, and a way to start
// processes (CNI plugins, the netbridge binary) inside a namespace.
//
// Every helper that changes kernel state works only inside namespaces that
// the test created; nothing here modifies the namespace the test process
// itself runs in. Helpers that need privileges call [RequireRoot], which
// skips the test when it does not run as root.
//
// Helpers that take a [testing.TB] report failures with t.Fatal, so they must
// be called from the goroutine running the test, and they register their
// teardown with t.Cleanup so that state is removed on failure too.
package testnet
