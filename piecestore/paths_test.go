package piecestore

import (
	"crypto/sha1"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"flotilla/internal/testenv"
	"flotilla/metainfo"
)

// rawInfo builds an Info by hand, bypassing metainfo's validation, to test
// the store's own defences.
func rawInfo(name string, multi bool, paths ...[]string) *metainfo.Info {
	info := &metainfo.Info{Name: name, PieceLength: 16, MultiFile: multi}
	for _, p := range paths {
		info.Files = append(info.Files, metainfo.File{Path: p, Length: 8, Offset: info.Length})
		info.Length += 8
	}
	for off := int64(0); off < info.Length; off += 16 {
		h := sha1.Sum(nil)
		info.Pieces = append(info.Pieces, h[:]...)
	}
	return info
}

func TestPathEscapeRejected(t *testing.T) {
	for _, c := range []struct {
		name string
		info *metainfo.Info
	}{
		{"dotdot in a file path", rawInfo("t", true, []string{"..", "..", "evil"})},
		{"dotdot name", rawInfo("..", true, []string{"evil"})},
		{"single-file dotdot", rawInfo("..", false, []string{".."})},
		{"absolute component", rawInfo("t", true, []string{"/etc/passwd"})},
		{"slash inside", rawInfo("t/../../x", false, []string{"t/../../x"})},
		{"empty component", rawInfo("t", true, []string{"a", "", "b"})},
		{"record directory", rawInfo(".flotilla", false, []string{".flotilla"})},
		{"duplicate paths", rawInfo("t", true, []string{"a"}, []string{"a"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "out")
			cfg := DefaultConfig()
			cfg.Dir, cfg.Info = dir, c.info
			s, err := Open(cfg)
			if err == nil {
				s.Close()
				t.Fatal("Open accepted an unsafe path")
			}
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("Open = %v, want ErrUnsafePath", err)
			}
			entries, _ := os.ReadDir(base)
			if len(entries) > 1 {
				t.Fatalf("something was created next to the output dir: %v", entries)
			}
		})
	}
}

func TestSymlinksRefused(t *testing.T) {
	tt := newTorrent(t, "sl", 16, fileSpec{"sub/f", 40}, fileSpec{"g", 8})
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir, outside string)
	}{
		{"torrent directory is a symlink", func(t *testing.T, dir, outside string) {
			os.Symlink(outside, filepath.Join(dir, "sl"))
		}},
		{"nested directory is a symlink", func(t *testing.T, dir, outside string) {
			os.Mkdir(filepath.Join(dir, "sl"), 0o755)
			os.Symlink(outside, filepath.Join(dir, "sl", "sub"))
		}},
		{"file is a symlink", func(t *testing.T, dir, outside string) {
			os.MkdirAll(filepath.Join(dir, "sl", "sub"), 0o755)
			os.WriteFile(filepath.Join(outside, "victim"), []byte("keep"), 0o644)
			os.Symlink(filepath.Join(outside, "victim"), filepath.Join(dir, "sl", "sub", "f"))
		}},
		{"relative symlink escaping", func(t *testing.T, dir, outside string) {
			os.Mkdir(filepath.Join(dir, "sl"), 0o755)
			os.Symlink("../../outside", filepath.Join(dir, "sl", "sub"))
		}},
		{"record directory is a symlink", func(t *testing.T, dir, outside string) {
			os.Symlink(outside, filepath.Join(dir, ".flotilla"))
		}},
		{"file is a fifo", func(t *testing.T, dir, outside string) {
			os.MkdirAll(filepath.Join(dir, "sl"), 0o755)
			if err := syscall.Mkfifo(filepath.Join(dir, "sl", "g"), 0o644); err != nil {
				testenv.Unavailable(t, "mkfifo: %v", err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			dir, outside := filepath.Join(base, "out"), filepath.Join(base, "outside")
			os.Mkdir(dir, 0o755)
			os.Mkdir(outside, 0o755)
			c.setup(t, dir, outside)
			_, err := Open(testConfig(tt, dir, nil))
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("Open = %v, want ErrUnsafePath", err)
			}
			entries, _ := os.ReadDir(outside)
			for _, e := range entries {
				if e.Name() != "victim" {
					t.Fatalf("created %s outside the output dir", e.Name())
				}
			}
			if b, err := os.ReadFile(filepath.Join(outside, "victim")); err == nil && string(b) != "keep" {
				t.Fatal("file outside the output dir was modified")
			}
		})
	}
}

func TestOutputDirItselfMayBeASymlink(t *testing.T) {
	tt := newTorrent(t, "ok", 16, fileSpec{"", 40})
	base := t.TempDir()
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o755)
	link := filepath.Join(base, "link")
	os.Symlink(real, link)
	s := openStore(t, testConfig(tt, link, nil), nil)
	s.Close()
	if _, err := os.Stat(filepath.Join(real, "ok")); err != nil {
		t.Fatalf("file not created through the user's own symlinked dir: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tt := newTorrent(t, "c", 16, fileSpec{"", 40})
	for _, mod := range []func(*Config){
		func(c *Config) { c.Dir = "" },
		func(c *Config) { c.Info = nil },
		func(c *Config) { c.WriteBudget = -1 },
		func(c *Config) { c.SyncBytes = -1 },
		func(c *Config) { c.SyncInterval = -1 },
	} {
		cfg := testConfig(tt, t.TempDir(), nil)
		mod(&cfg)
		if _, err := Open(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("Open = %v, want ErrConfig", err)
		}
	}
	// A literal with only the required fields gets the defaults, and the
	// caller's Config is not modified.
	cfg := Config{Dir: t.TempDir(), Info: tt.info, InfoHash: tt.hash}
	s := openStore(t, cfg, nil)
	if s.cfg.WriteBudget != DefaultConfig().WriteBudget || cfg.WriteBudget != 0 {
		t.Fatalf("defaults not applied to a copy: %d / %d", s.cfg.WriteBudget, cfg.WriteBudget)
	}
}

func TestSecondStoreOnSameDirRefused(t *testing.T) {
	tt := newTorrent(t, "twice", 16, fileSpec{"", 40})
	dir := t.TempDir()
	s := openStore(t, testConfig(tt, dir, nil), nil)
	if _, err := Open(testConfig(tt, dir, nil)); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	s.Close()
	s2 := openStore(t, testConfig(tt, dir, nil), nil)
	s2.Close()
}
