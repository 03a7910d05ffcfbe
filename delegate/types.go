package delegate

import "fmt"

// MsgType is the one-byte type at the start of every frame.
//
// The list is append-only: a number, once published, keeps its meaning
// forever and is never reused, even if its message is retired. New
// messages get the next free number and are only sent to a peer whose
// negotiated version (or capability) includes them; see spec.md.
type MsgType uint8

// Message types (protocol versions 1 to 3; Leaving and Left only to a
// coordinator whose hello lists CapLeave).
const (
	MsgHello       MsgType = 1  // both ways, once, on the TLS connection before yamux
	MsgJob         MsgType = 2  // coordinator → node, control stream
	MsgJobAccepted MsgType = 3  // node → coordinator, control stream
	MsgJobRejected MsgType = 4  // node → coordinator, control stream
	MsgAssign      MsgType = 5  // coordinator → node, control stream
	MsgRevoke      MsgType = 6  // coordinator → node, control stream
	MsgHave        MsgType = 7  // coordinator → node, control stream
	MsgAddPeers    MsgType = 8  // coordinator → node, control stream
	MsgCancel      MsgType = 9  // coordinator → node, control stream
	MsgStop        MsgType = 10 // coordinator → node, control stream
	MsgStatus      MsgType = 11 // node → coordinator, control stream
	MsgRevoked     MsgType = 12 // node → coordinator, control stream
	MsgFailed      MsgType = 13 // node → coordinator, control stream
	MsgPiece       MsgType = 14 // node → coordinator, data stream (header; raw bytes follow)
	MsgLeaving     MsgType = 15 // node → coordinator, control stream (CapLeave)
	MsgLeft        MsgType = 16 // node → coordinator, control stream (CapLeave)
	MsgPeers       MsgType = 17 // node → coordinator, control stream (CapPeers)
)

// CapPeers, in a coordinator's hello caps, says it takes Peers messages:
// peers a node's swarm learned (through PEX) for the coordinator's
// sub-chief.
const CapPeers = "peers"

// CapLeave, in a coordinator's hello, says it understands Leaving and
// Left: a node stopping cleanly ships its finished pieces before it goes
// (spec.md, "Leaving cleanly").
const CapLeave = "leave"

// String names a message type (never panics).
func (t MsgType) String() string {
	switch t {
	case MsgHello:
		return "Hello"
	case MsgJob:
		return "Job"
	case MsgJobAccepted:
		return "JobAccepted"
	case MsgJobRejected:
		return "JobRejected"
	case MsgAssign:
		return "Assign"
	case MsgRevoke:
		return "Revoke"
	case MsgHave:
		return "Have"
	case MsgAddPeers:
		return "AddPeers"
	case MsgCancel:
		return "Cancel"
	case MsgStop:
		return "Stop"
	case MsgStatus:
		return "Status"
	case MsgRevoked:
		return "Revoked"
	case MsgFailed:
		return "Failed"
	case MsgPiece:
		return "Piece"
	case MsgLeaving:
		return "Leaving"
	case MsgLeft:
		return "Left"
	case MsgPeers:
		return "Peers"
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Protocol versions this implementation speaks. Version 2 added the
// coordinator identity; version 1 peers are refused (a version 1 node
// would obey any holder of the cluster key). Version 3 carries many jobs
// per session; with a version 2 peer a session carries one job at a time.
const (
	ProtocolVersion    uint16 = 3
	MinProtocolVersion uint16 = 2
)

// Roles in the hello.
const (
	RoleCoordinator = "coordinator"
	RoleNode        = "node"
)

// Message bodies. Field keys are the msgpack map keys of spec.md; a
// decoder ignores keys it does not know, so a later version may add
// fields without a new message type.

type helloMsg struct {
	Version    uint16   `msgpack:"version"`
	MinVersion uint16   `msgpack:"min_version"`
	Role       string   `msgpack:"role"`
	Name       string   `msgpack:"name"`
	Caps       []string `msgpack:"caps"`
	Binding    []byte   `msgpack:"binding"`
	// Refused, in a node's hello, says why it refuses the session (too
	// many sessions); empty when it accepts.
	Refused string `msgpack:"refused,omitempty"`
	// RefusedCode says which refusal: "sessions" (too many) or
	// "coordinator" (not the coordinator key the node accepts).
	RefusedCode string `msgpack:"refused_code,omitempty"`
	// CoordinatorKey and CoordinatorSig, in a coordinator's hello: its
	// Ed25519 public key and its signature over the binding (spec.md,
	// "Coordinator identity").
	CoordinatorKey []byte `msgpack:"coordinator_key,omitempty"`
	CoordinatorSig []byte `msgpack:"coordinator_sig,omitempty"`
}

type jobMsg struct {
	Job             uint64     `msgpack:"job"`
	InfoHash        []byte     `msgpack:"info_hash"`
	Info            []byte     `msgpack:"info"`
	Trackers        [][]string `msgpack:"trackers"`
	CoordinatorPeer string     `msgpack:"coordinator_peer"`
	Encryption      string     `msgpack:"encryption,omitempty"` // absent from older coordinators
}

type jobAcceptedMsg struct {
	Job      uint64 `msgpack:"job"`
	PeerID   []byte `msgpack:"peer_id"`
	PeerAddr string `msgpack:"peer_addr"`
}

type jobRejectedMsg struct {
	Job    uint64 `msgpack:"job"`
	Reason string `msgpack:"reason"`
	Code   string `msgpack:"code,omitempty"`
}

// piecesMsg is the body of Assign, Have and Revoked. Kept is only in
// Revoked: the pieces of the Revoke the node keeps, having started them
// (absent from nodes before it, which send no Revoked when nothing is
// given back).
type piecesMsg struct {
	Job    uint64   `msgpack:"job"`
	Pieces []uint32 `msgpack:"pieces"`
	Kept   []uint32 `msgpack:"kept,omitempty"`
}

// toWire is the piece indices within a torrent of n pieces, as a list
// is sent; others are left out.
func toWire(pieces []int, n int) []uint32 {
	out := make([]uint32, 0, len(pieces))
	for _, i := range pieces {
		if i >= 0 && i < n {
			out = append(out, uint32(i))
		}
	}
	return out
}

// fromWire is the piece indices of a received list within a torrent of n
// pieces; a peer's list may name others, which are ignored.
func fromWire(p []uint32, n int) []int {
	out := make([]int, 0, len(p))
	for _, i := range p {
		if int64(i) < int64(n) {
			out = append(out, int(i))
		}
	}
	return out
}

type revokeMsg struct {
	Job    uint64   `msgpack:"job"`
	Pieces []uint32 `msgpack:"pieces"`
	Force  bool     `msgpack:"force"`
}

type addPeersMsg struct {
	Job   uint64   `msgpack:"job"`
	Addrs []string `msgpack:"addrs"`
}

type cancelMsg struct {
	Job uint64 `msgpack:"job"`
}

type stopMsg struct {
	Reason string `msgpack:"reason"`
}

type statusMsg struct {
	Job         uint64  `msgpack:"job"`
	Peers       int     `msgpack:"peers"`
	Seeds       int     `msgpack:"seeds"`
	DownRate    float64 `msgpack:"down_rate"`
	UpRate      float64 `msgpack:"up_rate"`
	Downloaded  int64   `msgpack:"downloaded"`
	Uploaded    int64   `msgpack:"uploaded"`
	Wasted      int64   `msgpack:"wasted"`
	Leased      int     `msgpack:"leased"`
	Active      int     `msgpack:"active"`
	Delivered   int     `msgpack:"delivered"`
	HashFails   int     `msgpack:"hash_fails"`
	Banned      int     `msgpack:"banned"`
	Outstanding int     `msgpack:"outstanding"`
	TimedOut    int64   `msgpack:"timed_out"`
	Snubbed     int     `msgpack:"snubbed"`
	MaxPeers    int     `msgpack:"max_peers,omitempty"` // the job's share of the node's peers; absent from older nodes
}

type failedMsg struct {
	Job  uint64 `msgpack:"job"`
	Err  string `msgpack:"err"`
	Code string `msgpack:"code,omitempty"`
}

// leavingMsg is the body of Leaving: the node is stopping; it takes no
// more pieces for the job.
type leavingMsg struct {
	Job uint64 `msgpack:"job"`
}

// leftMsg is the body of Left: the node shipped its last piece of the
// job; Pieces counts every piece it wrote to the job's data streams.
type leftMsg struct {
	Job    uint64 `msgpack:"job"`
	Pieces uint64 `msgpack:"pieces"`
}

type pieceHeader struct {
	Job    uint64 `msgpack:"job"`
	Index  uint32 `msgpack:"index"`
	Length uint32 `msgpack:"length"`
}

// newBody returns a pointer to a zero body for t, or nil for an unknown
// type.
func newBody(t MsgType) any {
	switch t {
	case MsgHello:
		return new(helloMsg)
	case MsgJob:
		return new(jobMsg)
	case MsgJobAccepted:
		return new(jobAcceptedMsg)
	case MsgJobRejected:
		return new(jobRejectedMsg)
	case MsgAssign, MsgHave, MsgRevoked:
		return new(piecesMsg)
	case MsgRevoke:
		return new(revokeMsg)
	case MsgAddPeers, MsgPeers:
		return new(addPeersMsg)
	case MsgCancel:
		return new(cancelMsg)
	case MsgStop:
		return new(stopMsg)
	case MsgStatus:
		return new(statusMsg)
	case MsgFailed:
		return new(failedMsg)
	case MsgPiece:
		return new(pieceHeader)
	case MsgLeaving:
		return new(leavingMsg)
	case MsgLeft:
		return new(leftMsg)
	}
	return nil
}
