package delegate

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"flotilla/cluster"
)

// The coordinator identity (spec.md, "Coordinator identity"). Every
// cluster member holds the cluster key, so the key alone cannot tell a
// coordinator from a compromised swarm node; a coordinator also holds an
// Ed25519 coordinator key whose public half the nodes are given, and
// signs each session's TLS exporter with it.
const (
	// CoordinatorKeyEnv may hold the coordinator's private key (text form)
	// when no --coordinator-key-file is given.
	CoordinatorKeyEnv = "FLOTILLA_COORDINATOR_KEY"
	// CoordinatorPubKeyEnv may hold the public half, for swarm nodes,
	// when no --coordinator-pubkey-file is given.
	CoordinatorPubKeyEnv = "FLOTILLA_COORDINATOR_PUBKEY"

	coordKeyPrefix = "flotilla-coordinator-key-v1:"
	coordPubPrefix = "flotilla-coordinator-pub-v1:"
	// purposeCoordinator derives the fallback coordinator key from the
	// cluster key (cluster.Key.Derive).
	purposeCoordinator = "flotilla delegate coordinator v2"
	// coordSigContext prefixes the TLS exporter the coordinator signs.
	coordSigContext = "flotilla delegate coordinator hello v2\x00"
)

// ErrBadCoordinatorKey: a coordinator key (or its public half) could not
// be read or parsed.
var ErrBadCoordinatorKey = errors.New("bad coordinator key")

// GenerateCoordinatorKey returns a new random coordinator key.
func GenerateCoordinatorKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate coordinator key: %w", err)
	}
	return priv, nil
}

// DerivedCoordinatorKey is the coordinator key used when none is given:
// a function of the cluster key, so every holder of the cluster key (every
// swarm node too) can compute it and command nodes.
func DerivedCoordinatorKey(k cluster.Key) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(k.Derive(purposeCoordinator))
}

// CoordinatorKeyText is the one-line text form of a private coordinator
// key. It reveals the key: write it only to the coordinator's key file.
func CoordinatorKeyText(priv ed25519.PrivateKey) string {
	return coordKeyPrefix + base64.RawURLEncoding.EncodeToString(priv.Seed())
}

// CoordinatorPubKeyText is the one-line text form of the public half,
// for swarm nodes (--coordinator-pubkey-file).
func CoordinatorPubKeyText(pub ed25519.PublicKey) string {
	return coordPubPrefix + base64.RawURLEncoding.EncodeToString(pub)
}

// CoordinatorFingerprint is a short public name for a coordinator key.
func CoordinatorFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:4])
}

func parseKeyText(text, prefix, what string, size int) ([]byte, error) {
	text = strings.TrimSpace(text)
	body, ok := strings.CutPrefix(text, prefix)
	if !ok {
		if strings.HasPrefix(text, coordKeyPrefix) && prefix == coordPubPrefix {
			return nil, fmt.Errorf("%w: this is the coordinator's private key; give swarm nodes only its public half "+
				"(the line `coord keygen --coordinator FILE` printed)", ErrBadCoordinatorKey)
		}
		return nil, fmt.Errorf("%w: %s does not start with %q", ErrBadCoordinatorKey, what, prefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(body, "="))
	if err != nil || len(raw) != size {
		return nil, fmt.Errorf("%w: %s is not %d bytes of base64url", ErrBadCoordinatorKey, what, size)
	}
	return raw, nil
}

// ParseCoordinatorKey reads CoordinatorKeyText's form.
func ParseCoordinatorKey(text string) (ed25519.PrivateKey, error) {
	seed, err := parseKeyText(text, coordKeyPrefix, "coordinator key", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParseCoordinatorPubKey reads CoordinatorPubKeyText's form.
func ParseCoordinatorPubKey(text string) (ed25519.PublicKey, error) {
	raw, err := parseKeyText(text, coordPubPrefix, "coordinator public key", ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(raw), nil
}

func loadText(file, env string, getenv func(string) string) (string, string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", "", fmt.Errorf("%w: %w", ErrBadCoordinatorKey, err)
		}
		return string(b), file, nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	return getenv(env), "$" + env, nil
}

// LoadCoordinatorKey reads the coordinator's private key from file, else
// from $FLOTILLA_COORDINATOR_KEY; with neither it returns nil and no
// error (the caller falls back to DerivedCoordinatorKey and warns).
func LoadCoordinatorKey(file string, getenv func(string) string) (ed25519.PrivateKey, error) {
	text, from, err := loadText(file, CoordinatorKeyEnv, getenv)
	if err != nil || strings.TrimSpace(text) == "" && file == "" {
		return nil, err
	}
	k, err := ParseCoordinatorKey(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return k, nil
}

// LoadCoordinatorPubKey reads the coordinator's public key from file, else
// from $FLOTILLA_COORDINATOR_PUBKEY; with neither it returns nil and no
// error (the node then accepts the key derived from the cluster key).
func LoadCoordinatorPubKey(file string, getenv func(string) string) (ed25519.PublicKey, error) {
	text, from, err := loadText(file, CoordinatorPubKeyEnv, getenv)
	if err != nil || strings.TrimSpace(text) == "" && file == "" {
		return nil, err
	}
	k, err := ParseCoordinatorPubKey(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return k, nil
}

// signBinding is the coordinator's signature over a session's exporter.
func signBinding(priv ed25519.PrivateKey, binding []byte) []byte {
	return ed25519.Sign(priv, append([]byte(coordSigContext), binding...))
}

// verifyBinding checks a coordinator's hello against the key a node
// accepts.
func verifyBinding(pub ed25519.PublicKey, derived bool, peer helloMsg, binding []byte) error {
	if len(peer.CoordinatorSig) == ed25519.SignatureSize &&
		ed25519.Verify(pub, append([]byte(coordSigContext), binding...), peer.CoordinatorSig) {
		return nil
	}
	which := "given by --coordinator-pubkey-file"
	if derived {
		which = "derived from the cluster key, as no --coordinator-pubkey-file was given"
	}
	return fmt.Errorf("%w: the node accepts only coordinator key %s (%s), and the peer signed with %s; "+
		"give the node the public half of the coordinator's key, or the coordinator the key the node expects",
		ErrNotCoordinator, CoordinatorFingerprint(pub), which, fingerprintOf(peer.CoordinatorKey))
}

func fingerprintOf(b []byte) string {
	if len(b) != ed25519.PublicKeySize {
		return "no key"
	}
	return CoordinatorFingerprint(b)
}
