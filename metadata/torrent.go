package metadata

import (
	"fmt"
	"os"
	"path/filepath"

	"flotilla/internal/atomicfile"
	"flotilla/metainfo"
)

// torrentOf makes the .torrent for a verified info dictionary: the magnet's
// trackers, one tier each, as its announce-list.
func torrentOf(info []byte, m *metainfo.Magnet) (*metainfo.Torrent, error) {
	t := &metainfo.Torrent{InfoBytes: info, CreatedBy: "Flotilla (from a magnet link)"}
	if len(m.Trackers) > 0 {
		t.Announce = m.Trackers[0]
		for _, tr := range m.Trackers {
			t.AnnounceList = append(t.AnnounceList, []string{tr})
		}
	}
	// Parsing the encoding back validates the info dictionary as a
	// .torrent file would be (a v2-only one gets metainfo.ErrV2Only).
	out, err := metainfo.Parse(t.Encode())
	if err != nil {
		return nil, fmt.Errorf("metadata: the info dictionary peers gave for %x: %w", m.InfoHash, err)
	}
	if out.InfoHash != m.InfoHash {
		return nil, fmt.Errorf("metadata: re-encoded info-hash %x differs from %x", out.InfoHash, m.InfoHash)
	}
	return out, nil
}

// Save writes t as a .torrent file named after the torrent in dir (created
// if missing), atomically, and returns its path.
func Save(t *metainfo.Torrent, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, filepath.Base(t.Info.Name)+".torrent")
	if err := atomicfile.WriteFile(path, t.Encode()); err != nil {
		return "", fmt.Errorf("metadata: saving the .torrent: %w", err)
	}
	return path, nil
}
