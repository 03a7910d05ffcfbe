package bencode

// Value is a decoded bencode value; Kind says which field holds it.
type Value struct {
	Kind Kind
	Int  int64
	Str  []byte           // aliases the decoded input
	List []Value          // nil for an empty list
	Dict map[string]Value // first occurrence of a tolerated repeated key
}

// Value decodes the next value with everything inside it. It allocates in
// proportion to the bytes it reads, never to a declared length.
func (d *Decoder) Value() (Value, error) {
	switch d.Peek() {
	case KindInt:
		n, err := d.Int()
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindInt, Int: n}, nil
	case KindString:
		s, err := d.Bytes()
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindString, Str: s}, nil
	case KindList:
		var l []Value
		err := d.List(func() error {
			v, err := d.Value()
			l = append(l, v)
			return err
		})
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindList, List: l}, nil
	case KindDict:
		m := make(map[string]Value)
		err := d.Dict(func(key []byte) error {
			v, err := d.Value()
			m[string(key)] = v
			return err
		})
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: KindDict, Dict: m}, nil
	}
	return Value{}, d.Skip() // says what is wrong
}
