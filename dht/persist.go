package dht

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
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
	return writeAtomic(path, append(b, '\n'))
}

// writeAtomic replaces path with data so that a crash leaves either the
// old file or the new one: a temporary file beside it, fsync, rename,
// fsync of the directory.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
