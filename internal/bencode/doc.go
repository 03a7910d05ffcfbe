// Package bencode is the module's one strict bencode reader (BEP 3), for
// every package that reads bencode: .torrent files, tracker replies, BEP 10
// extension handshakes. github.com/jackpal/bencode-go may still turn values
// this reader has validated into Go maps and slices.
//
// What it promises, for any input:
//
//   - Strict syntax. Integers are canonical (no leading zero, no "-0", no
//     '+', within int64); string lengths have no leading zero; every list
//     and dictionary is terminated; dictionary keys are strings; nothing
//     but the four types. Dictionary keys out of sorted order are accepted:
//     real torrents, trackers and clients send them.
//   - Duplicate dictionary keys are an error unless Options.Duplicate
//     tolerates them; a tolerated repeat is validated and skipped, so the
//     first occurrence wins everywhere (as in libtorrent).
//   - Bounded depth: nesting beyond Options.MaxDepth is an error, so hostile
//     input cannot exhaust the stack.
//   - No allocation by declared length: a string's declared length is
//     checked against the remaining input before it is used, and strings
//     alias the input. Only Value allocates, in proportion to the input's
//     size; a dictionary costs a key set only when its keys are out of order.
//   - No panic, and every error is a *SyntaxError with the offset of the
//     offending byte, wrapping ErrSyntax and the caller's Options.Kind.
//
// A Decoder is a cursor over one buffer, with no goroutines and no I/O; the
// caller walks a document with Dict, List, Int, Bytes and Skip (which only
// validates), or decodes a whole value with Value.
package bencode
