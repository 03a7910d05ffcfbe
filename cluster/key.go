package cluster

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// KeyPrefix starts the text form of a cluster key. The version in it lets a
// later format be told apart from this one.
const KeyPrefix = "flotilla-key-v1:"

// KeyEnv is the environment variable that may hold a cluster key in its
// text form when no key file is given.
const KeyEnv = "FLOTILLA_CLUSTER_KEY"

// Purposes for Derive. Each use of the cluster key gets its own subkey so
// that a weakness in one use cannot leak the key of another.
const (
	PurposeGossip      = "flotilla gossip v1"       // memberlist keyring (this package)
	PurposeDelegateTLS = "flotilla delegate tls v1" // delegate TLS identity (package delegate)
	purposeFingerprint = "flotilla fingerprint v1"  // Key.String
)

// Errors about cluster keys. They are wrapped with details; test with
// errors.Is.
var (
	// ErrNoKey: neither a key file nor FLOTILLA_CLUSTER_KEY was given.
	ErrNoKey = errors.New("no cluster key: create one with `coord keygen > cluster.key` " +
		"and pass --cluster-key-file cluster.key (or set " + KeyEnv + ")")
	// ErrBadKey: the text is not a valid cluster key.
	ErrBadKey = errors.New("bad cluster key")
	// ErrKeyFileExposed: the key file can be read by group or others.
	ErrKeyFileExposed = errors.New("cluster key file is readable by group or others")
)

// Key is the shared secret of a cluster: every member holds it, and nobody
// without it can join the gossip or open a delegate session. Never print it
// with anything but its String (a fingerprint); Text reveals it.
type Key [32]byte

// GenerateKey returns a new random key from crypto/rand.
func GenerateKey() (Key, error) {
	var k Key
	if _, err := io.ReadFull(rand.Reader, k[:]); err != nil {
		return Key{}, fmt.Errorf("generate cluster key: %w", err)
	}
	return k, nil
}

// Text returns the one-line text form "flotilla-key-v1:<base64url>" that
// ParseKey reads. It reveals the key: write it only to a key file.
func (k Key) Text() string {
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(k[:])
}

// ParseKey reads the text form written by Text. Surrounding white space is
// ignored, and base64 padding is accepted. Errors wrap ErrBadKey and never
// contain the key text.
func ParseKey(text string) (Key, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return Key{}, fmt.Errorf("%w: empty", ErrBadKey)
	}
	body, ok := strings.CutPrefix(text, KeyPrefix)
	if !ok {
		return Key{}, fmt.Errorf("%w: does not start with %q", ErrBadKey, KeyPrefix)
	}
	body = strings.TrimRight(body, "=")
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		// err from encoding/base64 names only an offset, never the input,
		// but we still do not pass it on verbatim.
		var cie base64.CorruptInputError
		if errors.As(err, &cie) {
			return Key{}, fmt.Errorf("%w: bad base64url at character %d after the prefix", ErrBadKey, int64(cie))
		}
		return Key{}, fmt.Errorf("%w: bad base64url", ErrBadKey)
	}
	var k Key
	if len(raw) != len(k) {
		return Key{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadKey, len(raw), len(k))
	}
	copy(k[:], raw)
	if k == (Key{}) {
		return Key{}, fmt.Errorf("%w: all zero (a placeholder, not a generated key)", ErrBadKey)
	}
	return k, nil
}

// LoadKey finds the cluster key. A non-empty file (from --cluster-key-file)
// wins; otherwise getenv(KeyEnv) is used; with neither it returns ErrNoKey,
// whose message says how to make a key. A file that cannot be read or
// parsed is an error, not a reason to fall back to the environment.
//
// LoadKey does not refuse a key file that group or others can read, because
// a Kubernetes secret volume is 0644 by default; callers should log the
// result of CheckKeyFileMode as a warning. getenv may be nil (os.Getenv).
func LoadKey(file string, getenv func(string) string) (Key, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Key{}, fmt.Errorf("read cluster key file: %w", err)
		}
		k, err := ParseKey(string(b))
		if err != nil {
			return Key{}, fmt.Errorf("cluster key file %s: %w", file, err)
		}
		return k, nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if text := getenv(KeyEnv); strings.TrimSpace(text) != "" {
		k, err := ParseKey(text)
		if err != nil {
			return Key{}, fmt.Errorf("%s: %w", KeyEnv, err)
		}
		return k, nil
	}
	return Key{}, ErrNoKey
}

// CheckKeyFileMode returns an error wrapping ErrKeyFileExposed when file's
// permission bits let group or others read it (a warning to log, not a
// reason to stop), or the error from stat.
func CheckKeyFileMode(file string) error {
	fi, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("stat cluster key file: %w", err)
	}
	if mode := fi.Mode().Perm(); mode&0o044 != 0 {
		return fmt.Errorf("%w: %s has mode %#o (chmod 600 it unless it is a mounted secret)",
			ErrKeyFileExposed, file, mode)
	}
	return nil
}

// Derive returns a 32-byte subkey for purpose by HKDF-SHA256 of the key.
// Different purposes give independent subkeys; see the Purpose constants.
func (k Key) Derive(purpose string) []byte {
	sub, err := hkdf.Key(sha256.New, k[:], nil, purpose, 32)
	if err != nil {
		// Only an output length beyond 255*32 bytes fails.
		panic("cluster: hkdf: " + err.Error())
	}
	return sub
}

// Fingerprint is a short public name for the key: the first 8 hex digits
// of SHA-256 of a derived subkey. Two members with equal fingerprints almost
// surely share the key; the fingerprint reveals nothing about it.
func (k Key) Fingerprint() string {
	sum := sha256.Sum256(k.Derive(purposeFingerprint))
	return hex.EncodeToString(sum[:4])
}

// String prints the fingerprint, never the key.
func (k Key) String() string { return "cluster-key:" + k.Fingerprint() }

// GoString keeps %#v from printing the key bytes.
func (k Key) GoString() string { return "cluster.Key(" + k.Fingerprint() + ")" }

// Format makes every fmt verb (%x and %d included) print String.
func (k Key) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, k.GoString())
		return
	}
	io.WriteString(f, k.String())
}

// LogValue keeps slog handlers (JSON included) from logging the key bytes.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON keeps encoding/json from writing the key bytes: it writes the
// fingerprint string.
func (k Key) MarshalJSON() ([]byte, error) {
	return []byte(`"` + k.String() + `"`), nil
}
