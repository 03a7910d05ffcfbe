package peerwire

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// BlockSize is the block length we request (16 KiB, the de facto standard).
const BlockSize = 16 * 1024

// MaxAcceptedBlock is the largest block length accepted from others by
// default (Limits.MaxBlock zero value).
const MaxAcceptedBlock = 32 * 1024

// DefaultMaxMessage is the default cap on extended and unknown messages (and
// on bitfields when the piece count is unknown).
const DefaultMaxMessage = 1 << 20

// MsgID identifies a peer wire message.
type MsgID uint8

// Message IDs from BEP 3, BEP 5 (port), BEP 6 (fast) and BEP 10 (extended).
const (
	Choke         MsgID = 0
	Unchoke       MsgID = 1
	Interested    MsgID = 2
	NotInterested MsgID = 3
	Have          MsgID = 4
	BitfieldMsg   MsgID = 5 // the payload is a bitfield.Bitfield (internal/bitfield)
	Request       MsgID = 6
	Piece         MsgID = 7
	Cancel        MsgID = 8
	Port          MsgID = 9
	Suggest       MsgID = 0x0D
	HaveAll       MsgID = 0x0E
	HaveNone      MsgID = 0x0F
	Reject        MsgID = 0x10
	AllowedFast   MsgID = 0x11
	Extended      MsgID = 20
)

// ExtHandshakeID is the extended message ID of the BEP 10 handshake.
const ExtHandshakeID uint8 = 0

// Known reports whether id is a message ID this package decodes.
func (id MsgID) Known() bool {
	switch id {
	case Choke, Unchoke, Interested, NotInterested, Have, BitfieldMsg, Request, Piece, Cancel, Port,
		Suggest, HaveAll, HaveNone, Reject, AllowedFast, Extended:
		return true
	}
	return false
}

// IsFast reports whether id belongs to the BEP 6 fast extension.
func (id MsgID) IsFast() bool {
	switch id {
	case Suggest, HaveAll, HaveNone, Reject, AllowedFast:
		return true
	}
	return false
}

func (id MsgID) String() string {
	switch id {
	case Choke:
		return "choke"
	case Unchoke:
		return "unchoke"
	case Interested:
		return "interested"
	case NotInterested:
		return "not-interested"
	case Have:
		return "have"
	case BitfieldMsg:
		return "bitfield"
	case Request:
		return "request"
	case Piece:
		return "piece"
	case Cancel:
		return "cancel"
	case Port:
		return "port"
	case Suggest:
		return "suggest"
	case HaveAll:
		return "have-all"
	case HaveNone:
		return "have-none"
	case Reject:
		return "reject"
	case AllowedFast:
		return "allowed-fast"
	case Extended:
		return "extended"
	}
	return "unknown(" + strconv.Itoa(int(id)) + ")"
}

// Message is one decoded peer wire message. Which fields are meaningful
// depends on ID:
//
//	KeepAlive                      (ID ignored)
//	Have, Suggest, AllowedFast     Index
//	Request, Cancel, Reject        Index, Begin, Length
//	Piece                          Index, Begin, Block (Length = len(Block) when read)
//	BitfieldMsg                    Bitfield
//	Port                           Port
//	Extended                       ExtID, ExtPayload
//	unknown IDs                    Payload (raw)
//
// Slices returned by Reader.ReadMessage alias the Reader's buffer and are
// valid until the next ReadMessage call.
type Message struct {
	KeepAlive bool
	ID        MsgID

	Index, Begin, Length uint32

	Bitfield []byte
	Block    []byte
	Port     uint16

	ExtID      uint8
	ExtPayload []byte

	Payload []byte // raw payload of an unknown ID
}

// payloadLen is the encoded payload length (after the ID byte) of m.
func (m *Message) payloadLen() int {
	switch m.ID {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		return 0
	case Have, Suggest, AllowedFast:
		return 4
	case Request, Cancel, Reject:
		return 12
	case Piece:
		return 8 + len(m.Block)
	case BitfieldMsg:
		return len(m.Bitfield)
	case Port:
		return 2
	case Extended:
		return 1 + len(m.ExtPayload)
	}
	return len(m.Payload)
}

// AppendMessage appends the wire encoding of m (length prefix included) to
// dst. It does not validate m against any Limits.
func AppendMessage(dst []byte, m Message) []byte {
	if m.KeepAlive {
		return binary.BigEndian.AppendUint32(dst, 0)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+m.payloadLen()))
	dst = append(dst, byte(m.ID))
	switch m.ID {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
	case Have, Suggest, AllowedFast:
		dst = binary.BigEndian.AppendUint32(dst, m.Index)
	case Request, Cancel, Reject:
		dst = binary.BigEndian.AppendUint32(dst, m.Index)
		dst = binary.BigEndian.AppendUint32(dst, m.Begin)
		dst = binary.BigEndian.AppendUint32(dst, m.Length)
	case Piece:
		dst = binary.BigEndian.AppendUint32(dst, m.Index)
		dst = binary.BigEndian.AppendUint32(dst, m.Begin)
		dst = append(dst, m.Block...)
	case BitfieldMsg:
		dst = append(dst, m.Bitfield...)
	case Port:
		dst = binary.BigEndian.AppendUint16(dst, m.Port)
	case Extended:
		dst = append(dst, m.ExtID)
		dst = append(dst, m.ExtPayload...)
	default:
		dst = append(dst, m.Payload...)
	}
	return dst
}

// appendPieceHeader appends the 13-byte header of a piece message carrying
// a block of blockLen bytes.
func appendPieceHeader(dst []byte, index, begin uint32, blockLen int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(9+blockLen))
	dst = append(dst, byte(Piece))
	dst = binary.BigEndian.AppendUint32(dst, index)
	return binary.BigEndian.AppendUint32(dst, begin)
}

// String formats m for logs (never the block contents).
func (m Message) String() string {
	if m.KeepAlive {
		return "keep-alive"
	}
	switch m.ID {
	case Have, Suggest, AllowedFast:
		return fmt.Sprintf("%v %d", m.ID, m.Index)
	case Request, Cancel, Reject:
		return fmt.Sprintf("%v %d/%d+%d", m.ID, m.Index, m.Begin, m.Length)
	case Piece:
		return fmt.Sprintf("%v %d/%d+%d", m.ID, m.Index, m.Begin, len(m.Block))
	case BitfieldMsg:
		return fmt.Sprintf("%v (%d bytes)", m.ID, len(m.Bitfield))
	case Port:
		return fmt.Sprintf("%v %d", m.ID, m.Port)
	case Extended:
		return fmt.Sprintf("%v %d (%d bytes)", m.ID, m.ExtID, len(m.ExtPayload))
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		return m.ID.String()
	}
	return fmt.Sprintf("%v (%d bytes)", m.ID, len(m.Payload))
}
