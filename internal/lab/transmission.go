package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Transmission refuses peers in 127.0.0.0/8 ("martians"): run it on a
// Netns host, with its peers on namespace addresses too.

// TransmissionArgs writes a transmission-cli configuration into cfgDir
// (DHT, LPD, PEX, uTP, port mapping and the blocklist off; bound to ip:port;
// no preallocation, so allocated bytes show progress) and returns the
// arguments to download torrentPath into dir, or to seed it when dir
// already holds the data. transmission-cli never exits by itself: stop it
// when the data is complete (Payload.Complete, then Payload.Verify).
func TransmissionArgs(cfgDir, ip string, port int, dir, torrentPath string) ([]string, error) {
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: transmission config: %w", err)
	}
	settings := fmt.Sprintf(`{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,
 "port-forwarding-enabled": false, "utp-enabled": false, "blocklist-enabled": false,
 "peer-port": %d, "bind-address-ipv4": %q, "bind-address-ipv6": "::1", "preallocation": 0,
 "speed-limit-down-enabled": false, "speed-limit-up-enabled": false, "message-level": 1}
`, port, ip)
	if err := os.WriteFile(filepath.Join(cfgDir, "settings.json"), []byte(settings), 0o644); err != nil {
		return nil, fmt.Errorf("lab: transmission config: %w", err)
	}
	return []string{"-g", cfgDir, "-w", dir, "-p", strconv.Itoa(port), "-M", "-D", "-U", torrentPath}, nil
}
