// Package tracker talks to BitTorrent trackers.
package tracker
