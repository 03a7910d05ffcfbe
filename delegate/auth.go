package delegate

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"syscall"
	"time"

	"flotilla/cluster"
)

// Transport constants (spec.md, "Security").
const (
	// tlsPurpose is the Derive purpose of the delegate TLS identity
	// ("flotilla delegate tls v1").
	tlsPurpose = cluster.PurposeDelegateTLS
	// alpnProto is the TLS ALPN protocol both sides require.
	alpnProto = "flotilla-delegate"
	// exporterLabel is the TLS exporter label of the hello binding.
	exporterLabel = "EXPORTER-flotilla-delegate-hello"
)

// credentials is the TLS identity every cluster member shares: an Ed25519
// key derived from the cluster key and a self-signed certificate for it.
//
// Why pinning instead of chain validation is sound: the private key is a
// deterministic function (HKDF-SHA256, then Ed25519 seed expansion) of the
// cluster key and of nothing else, and HKDF is one-way. In TLS 1.3 a peer
// that presents a certificate must also send CertificateVerify, a
// signature over the handshake transcript with the certificate's private
// key, which crypto/tls checks before our callback runs. So a peer whose
// leaf public key equals the derived public key has signed this very
// handshake with the derived private key, which it can only have computed
// from the cluster key; conversely every holder of the cluster key can. No
// CA is involved, so the certificate's other fields (subject, validity)
// carry no meaning and InsecureSkipVerify only turns off the CA chain
// check that our explicit pin replaces. Every member shares the identity:
// it proves membership, not which member (names in the hello are
// self-asserted).
type credentials struct {
	cert tls.Certificate
	pub  ed25519.PublicKey
}

func deriveCredentials(key cluster.Key) (*credentials, error) {
	if key == (cluster.Key{}) {
		return nil, fmt.Errorf("%w: no cluster key", ErrConfig)
	}
	seed := key.Derive(tlsPurpose)
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: derived TLS seed is %d bytes", ErrConfig, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "flotilla delegate"},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	// Ed25519 signing is deterministic: the same key gives the same bytes.
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("delegate: make certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("delegate: parse certificate: %w", err)
	}
	return &credentials{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, pub: pub}, nil
}

var errKeyMismatch = errors.New("peer certificate is not the cluster key's")

// verifyPeer pins the peer's leaf public key to ours.
func (c *credentials) verifyPeer(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return fmt.Errorf("%w: no certificate", errKeyMismatch)
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("%w: %v", errKeyMismatch, err)
	}
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok || !bytes.Equal(pub, c.pub) {
		return errKeyMismatch
	}
	return nil
}

func verifyConn(cs tls.ConnectionState) error {
	if cs.Version != tls.VersionTLS13 {
		return fmt.Errorf("%w: TLS version %x", errKeyMismatch, cs.Version)
	}
	if cs.NegotiatedProtocol != alpnProto {
		return fmt.Errorf("%w: ALPN %q", errKeyMismatch, cs.NegotiatedProtocol)
	}
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no certificate", errKeyMismatch)
	}
	return nil
}

func (c *credentials) tlsConfig(server bool) *tls.Config {
	cfg := &tls.Config{
		Certificates:          []tls.Certificate{c.cert},
		MinVersion:            tls.VersionTLS13,
		MaxVersion:            tls.VersionTLS13,
		NextProtos:            []string{alpnProto},
		VerifyPeerCertificate: c.verifyPeer,
		VerifyConnection:      verifyConn,
		// No resumption: every session proves the key afresh (and a
		// server's post-handshake ticket write would block on net.Pipe).
		SessionTicketsDisabled: true,
	}
	if server {
		cfg.ClientAuth = tls.RequireAnyClientCert // chain not checked: verifyPeer pins the key
	} else {
		cfg.InsecureSkipVerify = true // no CA chain: verifyPeer pins the key
		cfg.ServerName = "flotilla-delegate"
	}
	return cfg
}

// handshake runs TLS (client or server side) and the hello exchange on
// conn. It returns the TLS connection, the peer's hello and the negotiated
// version. The deadline of ctx (and timeout) bounds everything; nothing
// the peer sends is decoded before TLS succeeded.
func handshake(ctx context.Context, conn net.Conn, creds *credentials, server bool, local helloMsg, timeout time.Duration, hooks handshakeHooks) (*tls.Conn, helloMsg, uint16, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var tc *tls.Conn
	raw := &batchConn{Conn: conn} // batchRecords gathers a Write's records
	if server {
		tc = tls.Server(raw, creds.tlsConfig(true))
	} else {
		tc = tls.Client(raw, creds.tlsConfig(false))
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, helloMsg{}, 0, classifyTLS(ctx, err, server)
	}
	cs := tc.ConnectionState()
	binding, err := cs.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return nil, helloMsg{}, 0, fmt.Errorf("%w: exporter: %v", ErrAuth, err)
	}
	local.Binding = binding
	if hooks.sign != nil {
		local.CoordinatorKey = hooks.sign.Public().(ed25519.PublicKey)
		local.CoordinatorSig = signBinding(hooks.sign, binding)
	}
	// The coordinator (client) speaks first so that synchronous
	// transports (net.Pipe) never have both sides writing.
	if !server {
		out, err := encodeFrame(MsgHello, &local)
		if err != nil {
			return nil, helloMsg{}, 0, err
		}
		if _, err := tc.Write(out); err != nil {
			return nil, helloMsg{}, 0, ioErr(ctx, "send hello", err)
		}
	}
	t, body, err := readHelloFrame(tc)
	if err != nil {
		if !server && (isClosed(err) || isAlert(err)) {
			// TLS 1.3: the node checks our certificate after we finished
			// the handshake; its verdict arrives here.
			return nil, helloMsg{}, 0, classifyTLS(ctx, err, server)
		}
		return nil, helloMsg{}, 0, ioErr(ctx, "read hello", err)
	}
	var peer helloMsg
	if err := decodeBody(t, body, &peer); err != nil {
		return nil, helloMsg{}, 0, err
	}
	v, verdict := checkHello(local, peer, binding, server)
	if server {
		if verdict == nil && hooks.check != nil {
			verdict = hooks.check(peer, binding)
			switch {
			case errors.Is(verdict, ErrNotCoordinator):
				local.RefusedCode = refusedCoordinator
				local.Refused = strings.TrimPrefix(verdict.Error(), ErrNotCoordinator.Error()+": ")
			case verdict != nil:
				local.RefusedCode = refusedSessions
				local.Refused = strings.TrimPrefix(verdict.Error(), ErrRefused.Error()+": ")
			}
		}
		// Answer even on a mismatch so the coordinator learns why.
		out, err := encodeFrame(MsgHello, &local)
		if err != nil {
			return nil, helloMsg{}, 0, err
		}
		if _, err := tc.Write(out); err != nil && verdict == nil {
			return nil, helloMsg{}, 0, ioErr(ctx, "send hello", err)
		}
	}
	if verdict != nil {
		return nil, helloMsg{}, 0, verdict
	}
	conn.SetDeadline(time.Time{})
	return tc, peer, v, nil
}

// checkHello checks the peer's hello: bound to this TLS session, the
// other role, a common version; a node's hello may refuse the session.
func checkHello(local, peer helloMsg, binding []byte, server bool) (uint16, error) {
	if !bytes.Equal(peer.Binding, binding) {
		return 0, fmt.Errorf("%w: hello not bound to this TLS session", ErrAuth)
	}
	want := RoleNode
	if server {
		want = RoleCoordinator
	}
	if peer.Role != want {
		return 0, fmt.Errorf("%w: peer role %q, want %q", ErrProtocol, peer.Role, want)
	}
	v, err := negotiate(local, peer)
	if err != nil {
		return 0, err
	}
	switch {
	case server || peer.Refused == "" && peer.RefusedCode == "":
	case peer.RefusedCode == refusedCoordinator:
		return 0, fmt.Errorf("%w: node %q says: %s", ErrNotCoordinator, peer.Name, peer.Refused)
	default:
		return 0, fmt.Errorf("%w: node %q says: %s; retry later", ErrRefused, peer.Name, peer.Refused)
	}
	return v, nil
}

// Refusal codes in a node's hello.
const (
	refusedSessions    = "sessions"
	refusedCoordinator = "coordinator"
)

// handshakeHooks are the role-specific parts of the handshake.
type handshakeHooks struct {
	// sign (coordinator) is its coordinator key: its hello carries the
	// public key and a signature over the binding.
	sign ed25519.PrivateKey
	// check (node) is called once the peer passed the common checks; its
	// error is sent in the node's hello (refused) and returned.
	check func(peer helloMsg, binding []byte) error
}

// negotiate picks the highest version both sides speak.
func negotiate(local, peer helloMsg) (uint16, error) {
	v := min(local.Version, peer.Version)
	if peer.Version == 1 && local.MinVersion >= 2 {
		return 0, fmt.Errorf("%w: peer %q speaks only protocol version 1, which lets any holder of the cluster key "+
			"command swarm nodes; we require version %d or later (coordinator identity): upgrade it", ErrVersion, peer.Name, local.MinVersion)
	}
	if v < local.MinVersion || v < peer.MinVersion || peer.MinVersion > peer.Version {
		return 0, fmt.Errorf("%w: we speak %d..%d, peer %q speaks %d..%d", ErrVersion,
			local.MinVersion, local.Version, peer.Name, peer.MinVersion, peer.Version)
	}
	return v, nil
}

// classifyTLS maps a handshake failure to ErrAuth, ErrRefused (the node
// closed the connection without a TLS alert: it refuses connections) or
// a timeout.
func classifyTLS(ctx context.Context, err error, server bool) error {
	if errors.Is(err, errKeyMismatch) {
		return fmt.Errorf("%w: tls handshake: %w", ErrAuth, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("delegate: tls handshake: %w", ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("delegate: tls handshake: %w", context.DeadlineExceeded)
	}
	if !server && isClosed(err) && !isAlert(err) {
		return fmt.Errorf("%w: it closed the connection without a TLS answer: too many connections or handshakes at once, "+
			"or it is shutting down (retry later; this is not a key mismatch): %w", ErrRefused, err)
	}
	return fmt.Errorf("%w: tls handshake: %w", ErrAuth, err)
}

// isAlert reports a TLS alert from the peer (it refused our
// certificate).
func isAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// isClosed reports a connection closed or reset by the peer.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrClosedPipe)
}

func ioErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("delegate: %s: %w", what, ctx.Err())
	}
	return fmt.Errorf("delegate: %s: %w", what, err)
}
