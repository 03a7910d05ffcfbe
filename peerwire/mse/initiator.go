package mse

import (
	"encoding/binary"
	"fmt"
	"io"
)

// initiator is the initiating side's parameters.
type initiator struct {
	skey    [20]byte
	provide Method
	ia      []byte
	padA    pads
	padC    pads
	rnd     io.Reader
}

// run performs the initiator's handshake on rw.
func (in initiator) run(rw io.ReadWriter) (result, error) {
	var res result
	if len(in.ia) > MaxInitialPayload {
		return res, ErrPayloadTooBig
	}
	kp, err := newKeyPair(in.rnd)
	if err != nil {
		return res, err
	}
	// 1 A->B: Ya, PadA
	n, err := in.padA(in.rnd)
	if err != nil {
		return res, err
	}
	msg, err := appendPad(kp.pub[:], in.rnd, n)
	if err != nil {
		return res, err
	}
	if _, err := rw.Write(msg); err != nil {
		return res, fmt.Errorf("mse: send key: %w", err)
	}
	// 2 B->A: Yb, PadB
	st := &stream{r: rw}
	var yb [keyLen]byte
	if err := st.readFull(yb[:]); err != nil {
		return res, fmt.Errorf("mse: read key: %w", err)
	}
	s, err := kp.secret(yb[:])
	if err != nil {
		return res, err
	}
	enc, dec := newCipher("keyA", s, in.skey), newCipher("keyB", s, in.skey)
	// 3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
	// ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
	req1, req2, req3 := hash([]byte("req1"), s[:]), Req2(in.skey), hash([]byte("req3"), s[:])
	for i := range req2 {
		req2[i] ^= req3[i]
	}
	if n, err = in.padC(in.rnd); err != nil {
		return res, err
	}
	msg = append(append(make([]byte, 0, 40+vcLen+8+n+len(in.ia)), req1[:]...), req2[:]...)
	plain := make([]byte, vcLen, vcLen+8+n+len(in.ia))
	plain = binary.BigEndian.AppendUint32(plain, uint32(in.provide))
	plain = binary.BigEndian.AppendUint16(plain, uint16(n))
	if plain, err = appendPad(plain, in.rnd, n); err != nil {
		return res, err
	}
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(in.ia)))
	plain = append(plain, in.ia...)
	enc.XORKeyStream(plain, plain)
	if _, err := rw.Write(append(msg, plain...)); err != nil {
		return res, fmt.Errorf("mse: send request: %w", err)
	}
	// 4 B->A: ENCRYPT(VC, crypto_select, len(padD), padD)
	vc := make([]byte, vcLen)
	dec.XORKeyStream(vc, vc)
	if err := st.syncOn(vc, vcSyncWindow); err != nil {
		return res, err
	}
	var sel [6]byte
	if err := st.decrypt(dec, sel[:]); err != nil {
		return res, fmt.Errorf("mse: read reply: %w", err)
	}
	method := Method(binary.BigEndian.Uint32(sel[:4]))
	if (method != Plaintext && method != RC4) || method&in.provide == 0 {
		return res, fmt.Errorf("%w (%v of %v)", ErrBadSelect, method, in.provide)
	}
	padD := int(binary.BigEndian.Uint16(sel[4:]))
	if padD > maxPad {
		return res, ErrPadTooLong
	}
	if err := st.decrypt(dec, make([]byte, padD)); err != nil {
		return res, fmt.Errorf("mse: read reply: %w", err)
	}
	res = result{method: method, head: st.head, skey: in.skey}
	if method == RC4 {
		res.enc, res.dec = enc, dec
	}
	return res, nil
}
