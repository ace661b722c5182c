// Package bench holds netbridge's performance harness ("make bench", issue
// 8): in-process benchmarks of the library against the floor
// (inprocess_test.go), the shell baseline (baseline.sh), the floor itself
// (package floor and command nbfloor) and the report driver (command
// nbbench), which runs every Go benchmark, times the netbridge CLI against
// nbfloor and baseline.sh as processes, and prints a markdown report.
//
// The benchmarks need root: they create their own network namespaces and
// never touch the one they run in.
package bench
