package service

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestClientRoundTrip(t *testing.T) {
	srv, s, _ := newTestAPI(t, HTTPConfig{Token: testToken})
	ctx := context.Background()
	c := &Client{Server: srv.URL, Token: testToken}
	in, err := c.Add(ctx, testTorrent(t, "a.bin", 30_000), AddOptions{Paused: true, Limits: &Limits{Seed: true, Ratio: 1.5, Time: Duration(time.Hour)}})
	if err != nil || in.State != StatePaused || in.Limits.Ratio != 1.5 || in.Limits.Time != Duration(time.Hour) {
		t.Fatalf("add: %+v %v", in, err)
	}
	again, err := c.Add(ctx, testTorrent(t, "a.bin", 30_000), AddOptions{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 409 || again.ID != in.ID {
		t.Fatalf("add again: %+v %v", again, err)
	}
	if list, err := c.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	if _, err := c.Resume(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, in.ID, StateDownloading)
	if d, err := c.Get(ctx, in.ID); err != nil || d.State != StateDownloading || len(d.Files) != 1 {
		t.Fatalf("get: %+v %v", d, err)
	}
	if l, err := c.SetLimits(ctx, in.ID, Limits{Seed: false}); err != nil || l.Limits.Seed {
		t.Fatalf("limits: %+v %v", l, err)
	}
	if _, err := c.Pause(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, in.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, in.ID); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("get removed: %v", err)
	}
	bad := &Client{Server: srv.URL, Token: "nope"}
	if _, err := bad.List(ctx); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("wrong token: %v", err)
	}
}
