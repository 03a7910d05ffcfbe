package mse

import "fmt"

// Policy is the --encryption setting: which connections we make and
// accept.
type Policy int

const (
	// Off: plaintext BitTorrent only; an incoming MSE handshake is refused.
	// It is the zero value, so that a library user opts in.
	Off Policy = iota
	// Prefer: outgoing connections start an MSE handshake (so a peer that
	// insists on encryption is reached) offering RC4 and plaintext, and fall
	// back to a plaintext BitTorrent handshake if the peer fails or refuses
	// it; incoming plaintext and MSE are both accepted. The data is RC4 only
	// with a peer that wants it (offers or accepts RC4 alone): where both
	// sides allow plaintext it is chosen, as libtorrent's default does,
	// because RC4 costs about a third of a fast peer's throughput and two
	// to three times the CPU of a download.
	Prefer
	// Require: only MSE with RC4, both ways.
	Require
)

// ParsePolicy parses "prefer", "require" or "off".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "prefer":
		return Prefer, nil
	case "require":
		return Require, nil
	case "off":
		return Off, nil
	}
	return Off, fmt.Errorf("encryption %q: want prefer, require or off", s)
}

func (p Policy) String() string {
	switch p {
	case Off:
		return "off"
	case Prefer:
		return "prefer"
	case Require:
		return "require"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Set and Type make *Policy a flag.Value (and pflag.Value).
func (p *Policy) Set(s string) error {
	v, err := ParsePolicy(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

func (p *Policy) Type() string { return "prefer|require|off" }

// AcceptPlain reports whether an incoming plaintext BitTorrent handshake
// is accepted.
func (p Policy) AcceptPlain() bool { return p != Require }

// AcceptMethods is what an incoming MSE handshake may select (none: MSE
// is refused).
func (p Policy) AcceptMethods() Method {
	switch p {
	case Prefer:
		return RC4 | Plaintext
	case Require:
		return RC4
	}
	return 0
}

// Provide is what an outgoing MSE handshake offers (crypto_provide): what
// the policy would accept from an incoming one.
func (p Policy) Provide() Method { return p.AcceptMethods() }

// Initiate reports whether outgoing connections start with MSE, and
// Fallback whether a failed MSE attempt is retried in plaintext.
func (p Policy) Initiate() bool { return p != Off }

// Fallback reports whether an outgoing connection whose MSE handshake
// failed is redialled in plaintext.
func (p Policy) Fallback() bool { return p == Prefer }
