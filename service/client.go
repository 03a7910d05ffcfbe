package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls a coord serve's API. Its methods are safe for concurrent
// use.
type Client struct {
	// Server is the daemon's base URL, such as http://127.0.0.1:8080.
	Server string
	// Token is the bearer token ("" sends none).
	Token string
	// HTTP is the client used; nil: http.DefaultClient.
	HTTP *http.Client
}

// APIError is an error answer of the API: its status and message.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Add uploads a torrent; ErrExists (as an *APIError with status 409)
// comes with the existing job's id in the JobInfo.
func (c *Client) Add(ctx context.Context, torrent []byte, opts AddOptions) (JobInfo, error) {
	q := url.Values{}
	if opts.Paused {
		q.Set("paused", "true")
	}
	if l := opts.Limits; l != nil {
		q.Set("seed", strconv.FormatBool(l.Seed))
		q.Set("seed_ratio", strconv.FormatFloat(l.Ratio, 'g', -1, 64))
		q.Set("seed_time", time.Duration(l.Time).String())
	}
	path := "/api/v1/torrents"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var in JobInfo
	err := c.call(ctx, "POST", path, "application/x-bittorrent", torrent, &in)
	return in, err
}

// List returns every job, oldest first.
func (c *Client) List(ctx context.Context) ([]JobInfo, error) {
	var out struct {
		Torrents []JobInfo `json:"torrents"`
	}
	err := c.call(ctx, "GET", "/api/v1/torrents", "", nil, &out)
	return out.Torrents, err
}

// Get returns one job's detail.
func (c *Client) Get(ctx context.Context, id string) (JobDetail, error) {
	var d JobDetail
	err := c.call(ctx, "GET", "/api/v1/torrents/"+url.PathEscape(id), "", nil, &d)
	return d, err
}

// Pause pauses a job.
func (c *Client) Pause(ctx context.Context, id string) (JobInfo, error) {
	var in JobInfo
	err := c.call(ctx, "POST", "/api/v1/torrents/"+url.PathEscape(id)+"/pause", "", nil, &in)
	return in, err
}

// Resume resumes a paused (or retries a failed) job.
func (c *Client) Resume(ctx context.Context, id string) (JobInfo, error) {
	var in JobInfo
	err := c.call(ctx, "POST", "/api/v1/torrents/"+url.PathEscape(id)+"/resume", "", nil, &in)
	return in, err
}

// SetLimits replaces a job's seeding limits.
func (c *Client) SetLimits(ctx context.Context, id string, l Limits) (JobInfo, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return JobInfo{}, err
	}
	var in JobInfo
	err = c.call(ctx, "PUT", "/api/v1/torrents/"+url.PathEscape(id)+"/limits", "application/json", b, &in)
	return in, err
}

// Nodes returns the cluster's members and what each does.
func (c *Client) Nodes(ctx context.Context) (Nodes, error) {
	var n Nodes
	err := c.call(ctx, "GET", "/api/v1/nodes", "", nil, &n)
	return n, err
}

// Remove removes a job, and its data with deleteData.
func (c *Client) Remove(ctx context.Context, id string, deleteData bool) error {
	path := "/api/v1/torrents/" + url.PathEscape(id)
	if deleteData {
		path += "?delete_data=true"
	}
	return c.call(ctx, "DELETE", path, "", nil, nil)
}

// call sends one request and decodes the JSON answer into out; an error
// answer is an *APIError (whose body is decoded into out as well, for a
// 409's id).
func (c *Client) call(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Server, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach coord serve at %s: %w", c.Server, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", c.Server, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s answered %s (is it coord serve?)", c.Server, resp.Status)
		}
		if out != nil {
			json.Unmarshal(b, out)
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s answered something that is not the API's JSON: %w", c.Server, err)
	}
	return nil
}
