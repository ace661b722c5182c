package testnet

import (
	"errors"
	"os"
	"testing"
)

// DirNames returns the names of the entries of dir, none when dir does not
// exist; it fails the test when dir cannot be read. Tests use it to assert
// that a state directory was left empty.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
