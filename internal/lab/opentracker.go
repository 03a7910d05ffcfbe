package lab

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Opentracker is a running Debian opentracker.
type Opentracker struct {
	HTTPAnnounce string // http://ip:port/announce
	UDPAnnounce  string // udp://ip:port/announce
	Scrape       string // http://ip:port/scrape
	Dir          string // its chroot directory, holding the whitelist
	Proc         *Proc
	host         Host
	client       *http.Client
}

// StartOpentracker starts opentracker on host with free ports, chrooted
// in dir (created if needed) with infoHashes whitelisted (Debian builds it
// with a whitelist), and waits until it answers HTTP. It is stopped by cl.
func StartOpentracker(ctx context.Context, cl *Cleanup, host Host, dir string, infoHashes ...[20]byte) (*Opentracker, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: opentracker: %w", err)
	}
	var wl bytes.Buffer
	for _, h := range infoHashes {
		wl.WriteString(hex.EncodeToString(h[:]) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "whitelist"), wl.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("lab: opentracker: %w", err)
	}
	// opentracker drops privileges to -u; the chroot dir must be readable.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: opentracker: %w", err)
	}
	client := &http.Client{
		Transport: &http.Transport{DialContext: host.DialContext, DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}
	ip := host.IP()
	var lastErr error
	for attempt := range 5 {
		port, err := host.FreePort()
		if err != nil {
			return nil, err
		}
		args := []string{"-i", ip, "-p", strconv.Itoa(port), "-P", strconv.Itoa(port),
			"-A", ip, "-d", dir, "-w", "whitelist"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "nobody")
		}
		cmd := host.Command(ctx, "opentracker", args...)
		cmd.Dir = dir
		// The log lives beside, not inside, the chroot.
		logPath := filepath.Join(filepath.Dir(dir), fmt.Sprintf("opentracker-%s-%d.log", ip, attempt))
		p, err := StartProc(cl, "opentracker-"+ip, cmd, logPath)
		if err != nil {
			return nil, err
		}
		hostport := net.JoinHostPort(ip, strconv.Itoa(port))
		ot := &Opentracker{
			HTTPAnnounce: "http://" + hostport + "/announce",
			UDPAnnounce:  "udp://" + hostport + "/announce",
			Scrape:       "http://" + hostport + "/scrape",
			Dir:          dir,
			Proc:         p,
			host:         host,
			client:       client,
		}
		err = Poll(ctx, 5*time.Second, 20*time.Millisecond, func() (bool, error) {
			if p.Exited() {
				return false, p.exitedErr()
			}
			// Another test's opentracker may hold the same port (it won the
			// race, ours exits): only a listener our process owns counts.
			if !listensOn(p.Cmd.Process.Pid, port) {
				return false, nil
			}
			resp, err := client.Get("http://" + hostport + "/stats")
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return true, nil
		})
		if err == nil {
			return ot, nil
		}
		p.Stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lastErr = err // probably lost a port race: try another port
	}
	return nil, fmt.Errorf("lab: opentracker would not start on %s: %w", ip, lastErr)
}

// ScrapeResult is one torrent's line of a scrape reply.
type ScrapeResult struct {
	Complete, Incomplete, Downloaded int64
}

// ScrapeInfo asks the tracker how many seeders (complete) and leechers
// (incomplete) it knows for ih.
func (o *Opentracker) ScrapeInfo(ctx context.Context, ih [20]byte) (ScrapeResult, error) {
	var r ScrapeResult
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		o.Scrape+"?info_hash="+percentEncode(ih[:]), nil)
	if err != nil {
		return r, fmt.Errorf("lab: scrape: %w", err)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return r, fmt.Errorf("lab: scrape: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return r, fmt.Errorf("lab: scrape: %w", err)
	}
	m, _, err := bdecodeDict(body)
	if err != nil {
		return r, fmt.Errorf("lab: scrape reply %q: %w", body, err)
	}
	files, _ := m["files"].(map[string]any)
	entry, ok := files[string(ih[:])].(map[string]any)
	if !ok {
		return r, nil // tracker knows no peer yet
	}
	r.Complete, _ = entry["complete"].(int64)
	r.Incomplete, _ = entry["incomplete"].(int64)
	r.Downloaded, _ = entry["downloaded"].(int64)
	return r, nil
}

// AnnouncePeers announces to the tracker from its own host as a fresh
// leecher (peerID, port, numwant 200, compact=1), then announces
// "stopped" so that it leaves no trace, and returns the peers of the first
// reply: what the tracker tells any new client about ih. Peers dialling
// the announced port before "stopped" only find it closed.
func (o *Opentracker) AnnouncePeers(ctx context.Context, ih, peerID [20]byte, port int) ([]netip.AddrPort, error) {
	peers, err := o.announce(ctx, ih, peerID, port, "started")
	if err != nil {
		return nil, err
	}
	if _, err := o.announce(ctx, ih, peerID, port, "stopped"); err != nil {
		return nil, err
	}
	return peers, nil
}

func (o *Opentracker) announce(ctx context.Context, ih, peerID [20]byte, port int, event string) ([]netip.AddrPort, error) {
	u := fmt.Sprintf("%s?info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=1&compact=1&numwant=200&event=%s",
		o.HTTPAnnounce, percentEncode(ih[:]), percentEncode(peerID[:]), port, event)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("lab: announce: %w", err)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("lab: announce: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("lab: announce: %w", err)
	}
	m, _, err := bdecodeDict(body)
	if err != nil {
		return nil, fmt.Errorf("lab: announce reply %q: %w", body, err)
	}
	if f, ok := m["failure reason"].(string); ok {
		return nil, fmt.Errorf("lab: announce: tracker says %q", f)
	}
	raw, ok := m["peers"].(string)
	if !ok || len(raw)%6 != 0 {
		return nil, fmt.Errorf("lab: announce reply %q: no compact peer list", body)
	}
	var out []netip.AddrPort
	for b := []byte(raw); len(b) > 0; b = b[6:] {
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), binary.BigEndian.Uint16(b[4:6])))
	}
	return out, nil
}

// Poll calls cond every interval until it returns true (nil), an error
// (returned), ctx ends, or timeout passes (an error saying so).
func Poll(ctx context.Context, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v", ErrTimeout, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// percentEncode escapes every byte as %XX. url.QueryEscape would turn 0x20
// into "+", which opentracker does not decode, so a hash with a 0x20 byte
// was never found.
func percentEncode(b []byte) string {
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, 3*len(b))
	for _, c := range b {
		out = append(out, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return string(out)
}

// listensOn reports whether process pid owns a listening TCP socket on
// port, from /proc/PID/fd and /proc/PID/net/tcp (the process's own
// network namespace).
func listensOn(pid, port int) bool {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return false
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return false
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) >= 10 && strings.HasSuffix(f[1], want) && f[3] == "0A" && inodes[f[9]] {
			return true
		}
	}
	return false
}
