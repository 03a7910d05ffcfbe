// Package mse implements Message Stream Encryption / Protocol Encryption
// (MSE/PE), the obfuscated BitTorrent handshake of Azureus, libtorrent,
// aria2 and Transmission: a Diffie-Hellman exchange over the 768-bit prime
// P with G = 2, the torrent's info-hash (SKEY) proven by
// HASH('req2', SKEY) xor HASH('req3', S), and RC4 streams keyed with
// HASH('keyA', S, SKEY) (initiator to responder) and HASH('keyB', S, SKEY)
// (responder to initiator), the first 1024 bytes of each discarded.
//
// Initiate and Accept run the two sides of the handshake over a net.Conn
// and return a Conn that carries the rest of the stream: through RC4 when
// the responder selected it, in plaintext when it selected plaintext (only
// the handshake and the initial payload are then encrypted).
//
// # Bounds
//
// Both sides run within a deadline set on the connection, and every read
// has a bound: the pads are at most 512 bytes, so the responder finds
// HASH('req1', S) within 532 bytes after the initiator's key (else
// ErrSync), the initiator the encrypted verification constant within 520
// bytes after the responder's key; the initial payload is at most
// MaxInitialPayload bytes. A remote peer can therefore make us read at
// most about 1.3 KiB before the handshake ends, and hold us for no longer
// than the deadline.
package mse
