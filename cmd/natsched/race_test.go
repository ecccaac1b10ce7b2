//go:build race

package main

// raceEnabled: the tests build the binary under test with -race too.
const raceEnabled = true
