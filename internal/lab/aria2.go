package lab

import (
	"strconv"
)

// aria2Common are the options every aria2c of the lab gets: no DHT, LSD,
// PEX, IPv6 or config file; HTTP trackers only (aria2c speaks UDP trackers
// only with DHT on).
func aria2Common(ip string, port int) []string {
	return []string{
		"--no-conf=true",
		"--interface=" + ip,
		"--listen-port=" + strconv.Itoa(port),
		"--enable-dht=false", "--enable-dht6=false",
		"--bt-enable-lpd=false", "--enable-peer-exchange=false",
		"--disable-ipv6=true",
		"--file-allocation=none",
		"--bt-save-metadata=false",
		"--summary-interval=0",
		"--console-log-level=warn",
		"--enable-color=false",
		"--show-console-readout=false",
	}
}

// Aria2SeedArgs are aria2c's arguments to seed torrentPath from dataDir
// (which holds the payload under its name) on ip:port, forever.
func Aria2SeedArgs(ip string, port int, dataDir, torrentPath string) []string {
	return append(aria2Common(ip, port),
		"--dir="+dataDir,
		"--check-integrity=true", "--bt-hash-check-seed=true",
		"--seed-ratio=0.0",
		"--bt-max-peers=0",
		torrentPath)
}

// Aria2LeechArgs are aria2c's arguments to download torrentPath into
// outDir from ip:port and exit when done (no seeding).
func Aria2LeechArgs(ip string, port int, outDir, torrentPath string) []string {
	return append(aria2Common(ip, port),
		"--dir="+outDir,
		"--seed-time=0",
		"--bt-stop-timeout=0",
		torrentPath)
}
