package main

import (
	"crypto/rand"
	"fmt"
	"net"
	"time"

	"flotilla/internal/lab"
	"flotilla/peerwire"
)

// The aria2c seeders accept incoming connections on their engine's tick,
// once a second while idle (three per tick), and they all started
// together, so their ticks are in phase. A run's first data therefore
// comes at the first tick after its dials: anywhere from 0.1 to 1.1 s
// after its start, by the luck of when the run started. Measured as they
// came, the coordinator alone waited 0.8-0.9 s for it and the 3-host run
// after it 0.2-0.3 s, or the other way round: a third of the difference
// between 2.5x and 2.8x on 192 MiB. Every run therefore starts at the same
// phase: tickPhase after a seeder answered a probe handshake, so that the
// seeders' first tick comes about tickPhase before a second has passed
// for every run alike (the expected wait over random phases is half a
// second).
const tickPhase = 500 * time.Millisecond

// alignToSeederTick waits for the seeders' next accept tick (a handshake
// to the first seeder, from the tracker's host, is answered on it), then
// for tickPhase more. It returns how long it waited; when the probe fails
// it says why and the run starts unaligned.
func alignToSeederTick(sw *lab.Swarm, l *lab.ClusterLab) (time.Duration, error) {
	start := time.Now()
	if len(sw.SeederAddrs) == 0 {
		return 0, fmt.Errorf("no seeders")
	}
	var answered time.Time
	err := l.Tracker.Do(func() error {
		c, err := net.DialTimeout("tcp", sw.SeederAddrs[0], 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		h := peerwire.Handshake{InfoHash: sw.Torrent.InfoHash}
		rand.Read(h.PeerID[:])
		if err := peerwire.WriteHandshake(c, h); err != nil {
			return err
		}
		if _, err := peerwire.ReadHandshake(c); err != nil {
			return err
		}
		answered = time.Now()
		return nil
	})
	if err != nil {
		return time.Since(start), fmt.Errorf("probing seeder %s: %w", sw.SeederAddrs[0], err)
	}
	time.Sleep(time.Until(answered.Add(tickPhase)))
	return time.Since(start), nil
}
