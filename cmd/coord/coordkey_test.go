package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"flotilla/delegate"
)

// keygen --coordinator writes a private coordinator key (0600, never
// overwritten) and prints its public half, which the flags accept.
func TestKeygenCoordinator(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coordinator.key")
	code, out, errs := runCoord(t, "keygen", "--coordinator", path)
	if code != 0 {
		t.Fatalf("keygen --coordinator: %d %s", code, errs)
	}
	pub, err := delegate.ParseCoordinatorPubKey(out)
	if err != nil {
		t.Fatalf("printed public key: %v (%q)", err, out)
	}
	priv, err := delegate.LoadCoordinatorKey(path, nil)
	if err != nil || !pub.Equal(priv.Public().(ed25519.PublicKey)) {
		t.Fatalf("key file: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	if code, _, errs := runCoord(t, "keygen", "--coordinator", path); code != 1 || !strings.Contains(errs, "never overwritten") {
		t.Fatalf("second keygen over the same file: %d %q", code, errs)
	}
	if after, err := delegate.LoadCoordinatorKey(path, nil); err != nil || !after.Equal(priv) {
		t.Fatal("the key file was overwritten")
	}
}
