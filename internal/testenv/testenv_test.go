package testenv

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestStartOpentracker(t *testing.T) {
	var h [20]byte
	copy(h[:], "flotilla-testenv-hash")
	ot := StartOpentracker(t, "127.0.0.1", h)
	q := url.Values{}
	q.Set("info_hash", string(h[:]))
	q.Set("peer_id", "-FL0001-abcdefghijkl")
	q.Set("port", "6881")
	q.Set("left", "0")
	q.Set("compact", "1")
	resp, err := http.Get(ot.HTTPAnnounce + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "8:interval") {
		t.Fatalf("whitelisted announce failed: %q", body)
	}
	var other [20]byte
	q.Set("info_hash", string(other[:]))
	resp, err = http.Get(ot.HTTPAnnounce + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "failure reason") {
		t.Fatalf("non-whitelisted announce should fail, got %q", body)
	}
}
