package cluster

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustKey(t testing.TB) Key {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyRoundTrip(t *testing.T) {
	k := mustKey(t)
	if k == (Key{}) {
		t.Fatal("generated an all-zero key")
	}
	if k2 := mustKey(t); k2 == k {
		t.Fatal("two generated keys are equal")
	}
	text := k.Text()
	if !strings.HasPrefix(text, KeyPrefix) || strings.ContainsAny(text, "\n =+/") {
		t.Fatalf("text form %q: want one line, prefix, base64url without padding", text)
	}
	for _, in := range []string{text, text + "\n", "  \t" + text + "\r\n", text + "="} {
		got, err := ParseKey(in)
		if err != nil {
			t.Fatalf("ParseKey(%q): %v", in, err)
		}
		if got != k {
			t.Fatalf("ParseKey(%q) gave a different key", in)
		}
	}
}

func TestParseKeyErrors(t *testing.T) {
	k := mustKey(t)
	body := strings.TrimPrefix(k.Text(), KeyPrefix)
	short := KeyPrefix + base64.RawURLEncoding.EncodeToString(k[:31])
	long := KeyPrefix + base64.RawURLEncoding.EncodeToString(append(k[:], 1))
	zero := KeyPrefix + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	std := KeyPrefix + base64.StdEncoding.EncodeToString(k[:]) // may contain + or /
	cases := []struct {
		name, in, want string
	}{
		{"empty", "  \n", "empty"},
		{"no prefix", body, "does not start with"},
		{"wrong version", "flotilla-key-v2:" + body, "does not start with"},
		{"short", short, "31 bytes, want 32"},
		{"long", long, "33 bytes, want 32"},
		{"bad base64", KeyPrefix + body[:10] + "!" + body[11:], "bad base64url at character 10"},
		{"inner space", KeyPrefix + body[:10] + " " + body[10:], "bad base64url"},
		{"zero", zero, "all zero"},
	}
	if strings.ContainsAny(std, "+/") {
		cases = append(cases, struct{ name, in, want string }{"std alphabet", std, "bad base64url"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKey(tc.in)
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("err = %v, want ErrBadKey", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to say %q", err, tc.want)
			}
			// The error must never echo key material.
			if len(body) > 8 && strings.Contains(err.Error(), body[:8]) {
				t.Fatalf("error %q echoes the key", err)
			}
		})
	}
}

func TestLoadKeyPrecedence(t *testing.T) {
	dir := t.TempDir()
	fileKey, envKey := mustKey(t), mustKey(t)
	file := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(file, []byte(fileKey.Text()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == KeyEnv {
				return v
			}
			return ""
		}
	}

	// The file wins over the environment.
	got, err := LoadKey(file, env(envKey.Text()))
	if err != nil || got != fileKey {
		t.Fatalf("file+env: got %v, %v; want the file's key %v", got, err, fileKey)
	}
	// The environment when no file is given.
	got, err = LoadKey("", env(" "+envKey.Text()+"\n"))
	if err != nil || got != envKey {
		t.Fatalf("env: got %v, %v; want the env key %v", got, err, envKey)
	}
	// Neither: ErrNoKey, saying how to make one.
	_, err = LoadKey("", env(""))
	if !errors.Is(err, ErrNoKey) {
		t.Fatalf("no key: err = %v, want ErrNoKey", err)
	}
	for _, hint := range []string{"coord keygen > cluster.key", "--cluster-key-file", KeyEnv} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("no-key message %q does not mention %q", err, hint)
		}
	}
	// A missing or broken file is an error, not a fallback to the env.
	if _, err := LoadKey(filepath.Join(dir, "missing"), env(envKey.Text())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(bad, env(envKey.Text())); !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad file: err = %v, want ErrBadKey naming the file", err)
	}
	// A malformed env value names the variable but not the value.
	_, err = LoadKey("", env("flotilla-key-v1:secretsecretsecret"))
	if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), KeyEnv) || strings.Contains(err.Error(), "secretsecret") {
		t.Fatalf("bad env: err = %v", err)
	}
}

func TestCheckKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(file, []byte(mustKey(t).Text()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckKeyFileMode(file); err != nil {
		t.Fatalf("0600: %v", err)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckKeyFileMode(file); !errors.Is(err, ErrKeyFileExposed) {
		t.Fatalf("0644: err = %v, want ErrKeyFileExposed", err)
	}
	// Still loadable: exposure is a warning only.
	if _, err := LoadKey(file, nil); err != nil {
		t.Fatalf("LoadKey of a 0644 file: %v", err)
	}
}

func TestDeriveSeparation(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	g1, d1 := k1.Derive(PurposeGossip), k1.Derive(PurposeDelegateTLS)
	if len(g1) != 32 || len(d1) != 32 {
		t.Fatalf("subkey lengths %d, %d; want 32", len(g1), len(d1))
	}
	if bytes.Equal(g1, d1) {
		t.Fatal("gossip and delegate subkeys are equal")
	}
	if bytes.Equal(g1, k1[:]) || bytes.Equal(d1, k1[:]) {
		t.Fatal("a subkey equals the key itself")
	}
	if !bytes.Equal(g1, k1.Derive(PurposeGossip)) {
		t.Fatal("Derive is not deterministic")
	}
	if bytes.Equal(g1, k2.Derive(PurposeGossip)) {
		t.Fatal("different keys give the same subkey")
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	k := mustKey(t)
	secret := []string{
		strings.TrimPrefix(k.Text(), KeyPrefix)[:12],
		fmt.Sprintf("%x", k[:])[:12],
		fmt.Sprint(k[:])[:12],
	}
	var logBuf, jsonLog bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "key", k)
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("x", "key", k)
	js, err := json.Marshal(struct{ Key Key }{k})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String": k.String(),
		"%v":     fmt.Sprintf("%v", k),
		"%s":     fmt.Sprintf("%s", k),
		"%x":     fmt.Sprintf("%x", k),
		"%d":     fmt.Sprintf("%d", k),
		"%#v":    fmt.Sprintf("%#v", k),
		"%+v":    fmt.Sprintf("%+v", Config{Key: k}),
		"cfg%#v": fmt.Sprintf("%#v", Config{Key: k}),
		"slog":   logBuf.String(),
		"json":   string(js),
		"slog-j": jsonLog.String(),
	}
	fp := k.Fingerprint()
	if len(fp) != 8 {
		t.Fatalf("fingerprint %q: want 8 hex digits", fp)
	}
	for name, out := range outputs {
		for _, s := range secret {
			if strings.Contains(out, s) {
				t.Errorf("%s output %q contains key material", name, out)
			}
		}
	}
	if !strings.Contains(k.String(), fp) || !strings.Contains(logBuf.String(), fp) {
		t.Errorf("String %q / log %q lack the fingerprint %q", k.String(), logBuf.String(), fp)
	}
	if mustKey(t).Fingerprint() == fp {
		t.Error("two keys share a fingerprint")
	}
}
