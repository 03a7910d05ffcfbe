package dht

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"

	"flotilla/internal/atomicfile"
)

// stateFile is the routing table as saved: our id and the contacts that
// were not bad. The contacts come back questionable and are pinged.
type stateFile struct {
	ID    string      `json:"id"`
	Nodes []savedNode `json:"nodes"`
}

type savedNode struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// loadState reads path; a missing file is no error (ok false).
func loadState(path string) (self ID, nodes []nodeInfo, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return self, nil, false, nil
	}
	if err != nil {
		return self, nil, false, err
	}
	var s stateFile
	if err := json.Unmarshal(b, &s); err != nil {
		return self, nil, false, fmt.Errorf("dht state %s: %w", path, err)
	}
	if self, err = parseID(s.ID); err != nil {
		return self, nil, false, fmt.Errorf("dht state %s: %w", path, err)
	}
	for _, sn := range s.Nodes {
		id, err1 := parseID(sn.ID)
		a, err2 := netip.ParseAddrPort(sn.Addr)
		if err1 == nil && err2 == nil {
			nodes = append(nodes, nodeInfo{ID: id, Addr: a})
		}
	}
	return self, nodes, true, nil
}

func parseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 20 {
		return id, fmt.Errorf("bad node id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// saveState writes the table to path atomically.
func saveState(path string, self ID, nodes []nodeInfo) error {
	s := stateFile{ID: self.String(), Nodes: make([]savedNode, len(nodes))}
	for i, n := range nodes {
		s.Nodes[i] = savedNode{ID: n.ID.String(), Addr: n.Addr.String()}
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}
