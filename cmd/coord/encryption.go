package main

import (
	"flag"

	"flotilla/peerwire/mse"
)

// registerEncryption adds --encryption (MSE/PE), prefer by default.
func (o *transferOpts) registerEncryption(fs *flag.FlagSet) {
	o.encryption = mse.Prefer
	fs.Var(&o.encryption, "encryption", "peer connections: prefer (MSE/PE handshake offering RC4 and plaintext, RC4 data only with peers that insist; fall back to plaintext; accept both), require (encrypted only, both ways) or off (plaintext only; incoming encrypted handshakes refused)")
}
