package mse

import (
	"encoding/binary"
	"fmt"
	"io"
)

// SKeyFunc finds the info-hash (SKEY) whose HASH('req2', SKEY) is req2
// (see Req2), reporting false for a torrent not served.
type SKeyFunc func(req2 [20]byte) (skey [20]byte, ok bool)

// responder is the responding side's parameters.
type responder struct {
	skeys SKeyFunc
	allow Method // methods we accept: RC4 is chosen over Plaintext
	padB  pads
	padD  pads
	rnd   io.Reader
}

// choose picks plaintext if both sides allow it, else RC4: a side that
// wants its data encrypted offers (or accepts) RC4 alone.
func choose(allow, provide Method) (Method, error) {
	switch both := allow & provide; {
	case both&Plaintext != 0:
		return Plaintext, nil
	case both&RC4 != 0:
		return RC4, nil
	}
	return 0, fmt.Errorf("%w: we accept %v, the peer provides %v", ErrNoMethod, allow, provide)
}

// run performs the responder's handshake on rw.
func (re responder) run(rw io.ReadWriter) (result, error) {
	var res result
	// 1 A->B: Ya, PadA
	st := &stream{r: rw}
	var ya [keyLen]byte
	if err := st.readFull(ya[:]); err != nil {
		return res, fmt.Errorf("mse: read key: %w", err)
	}
	kp, err := newKeyPair(re.rnd)
	if err != nil {
		return res, err
	}
	s, err := kp.secret(ya[:])
	if err != nil {
		return res, err
	}
	// 2 B->A: Yb, PadB
	n, err := re.padB(re.rnd)
	if err != nil {
		return res, err
	}
	msg, err := appendPad(kp.pub[:], re.rnd, n)
	if err != nil {
		return res, err
	}
	if _, err := rw.Write(msg); err != nil {
		return res, fmt.Errorf("mse: send key: %w", err)
	}
	// 3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
	// ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
	req1 := hash([]byte("req1"), s[:])
	if err := st.syncOn(req1[:], reqSyncWindow); err != nil {
		return res, err
	}
	var req2 [20]byte
	if err := st.readFull(req2[:]); err != nil {
		return res, fmt.Errorf("mse: read request: %w", err)
	}
	req3 := hash([]byte("req3"), s[:])
	for i := range req2 {
		req2[i] ^= req3[i]
	}
	skey, ok := re.skeys(req2)
	if !ok {
		return res, ErrUnknownSKey
	}
	dec, enc := newCipher("keyA", s, skey), newCipher("keyB", s, skey)
	var hdr [vcLen + 6]byte
	if err := st.decrypt(dec, hdr[:]); err != nil {
		return res, fmt.Errorf("mse: read request: %w", err)
	}
	if [vcLen]byte(hdr[:vcLen]) != [vcLen]byte{} {
		return res, ErrBadVC
	}
	provide := Method(binary.BigEndian.Uint32(hdr[vcLen:]))
	padC := int(binary.BigEndian.Uint16(hdr[vcLen+4:]))
	if padC > maxPad {
		return res, ErrPadTooLong
	}
	padAndLen := make([]byte, padC+2)
	if err := st.decrypt(dec, padAndLen); err != nil {
		return res, fmt.Errorf("mse: read request: %w", err)
	}
	iaLen := int(binary.BigEndian.Uint16(padAndLen[padC:]))
	if iaLen > MaxInitialPayload {
		return res, ErrPayloadTooBig
	}
	ia := make([]byte, iaLen)
	if err := st.decrypt(dec, ia); err != nil {
		return res, fmt.Errorf("mse: read initial payload: %w", err)
	}
	method, err := choose(re.allow, provide)
	if err != nil {
		return res, err
	}
	// 4 B->A: ENCRYPT(VC, crypto_select, len(padD), padD)
	if n, err = re.padD(re.rnd); err != nil {
		return res, err
	}
	reply := make([]byte, vcLen, vcLen+6+n)
	reply = binary.BigEndian.AppendUint32(reply, uint32(method))
	reply = binary.BigEndian.AppendUint16(reply, uint16(n))
	if reply, err = appendPad(reply, re.rnd, n); err != nil {
		return res, err
	}
	enc.XORKeyStream(reply, reply)
	if _, err := rw.Write(reply); err != nil {
		return res, fmt.Errorf("mse: send reply: %w", err)
	}
	res = result{method: method, head: st.head, ia: ia, skey: skey}
	if method == RC4 {
		res.enc, res.dec = enc, dec
	}
	return res, nil
}
