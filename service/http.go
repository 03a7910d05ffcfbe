package service

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"flotilla/metainfo"
)

// HTTPConfig configures the API handler.
type HTTPConfig struct {
	// Token is the bearer token every API request must carry; "" lets
	// requests in without one (only for a loopback listener, which the
	// caller checks: coord serve --insecure-localhost).
	Token string
	// AllowedHosts are the host names (without port) a request's Host
	// header may name; others are refused (DNS rebinding).
	AllowedHosts []string
	// MaxUpload bounds an added torrent's size in bytes.
	MaxUpload int64
}

// DefaultAllowedHosts are the loopback names every API accepts.
var DefaultAllowedHosts = []string{"localhost", "127.0.0.1", "::1"}

// apiHandler serves the API of one Service.
type apiHandler struct {
	s       *Service
	cfg     HTTPConfig
	allowed map[string]bool
}

// NewHandler returns the HTTP handler of the API (under /api/v1/) and of
// /healthz and /readyz, which need neither a token nor an allowed Host
// (Kubernetes probes name the pod's address) and tell nothing about jobs.
func NewHandler(s *Service, cfg HTTPConfig) http.Handler {
	h := &apiHandler{s: s, cfg: cfg, allowed: map[string]bool{}}
	for _, n := range cfg.AllowedHosts {
		h.allowed[strings.ToLower(strings.Trim(n, "[]"))] = true
	}
	api := http.NewServeMux()
	api.HandleFunc("POST /api/v1/torrents", h.add)
	api.HandleFunc("GET /api/v1/torrents", h.list)
	api.HandleFunc("GET /api/v1/torrents/{id}", h.show)
	api.HandleFunc("GET /api/v1/torrents/{id}/pieces", h.pieces)
	api.HandleFunc("DELETE /api/v1/torrents/{id}", h.remove)
	api.HandleFunc("POST /api/v1/torrents/{id}/pause", h.pause)
	api.HandleFunc("POST /api/v1/torrents/{id}/resume", h.resume)
	api.HandleFunc("PUT /api/v1/torrents/{id}/limits", h.limits)
	api.HandleFunc("GET /api/v1/nodes", h.nodes)
	api.HandleFunc("GET /api/v1/alerts", h.alerts)
	api.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API endpoint %s %s; the endpoints are under /api/v1/ (see docs/api.md)", r.Method, r.URL.Path))
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.Ready() {
			writeError(w, http.StatusServiceUnavailable, "not ready: starting, shutting down, or the cluster not joined yet")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("/api/", h.guard(api))
	mux.Handle("/", h.hostOnly(dashboard()))
	// Go's profiles (go tool pprof), behind the token like the API: they
	// name the daemon's internals.
	mux.Handle("GET /debug/pprof/", h.guard(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", h.guard(http.HandlerFunc(pprof.Profile)))
	// A scraper names the pod's address as Host: with a token, /metrics
	// needs the token alone.
	prom := promhttp.HandlerFor(NewRegistry(s), promhttp.HandlerOpts{})
	if cfg.Token != "" {
		mux.Handle("GET /metrics", h.tokenOnly(prom))
	} else {
		mux.Handle("GET /metrics", h.guard(prom))
	}
	return mux
}

// guard refuses requests whose Host is not allowed, then those without
// the token.
func (h *apiHandler) guard(next http.Handler) http.Handler { return h.hostOnly(h.tokenOnly(next)) }

// hostOnly refuses requests whose Host is not allowed (DNS rebinding).
func (h *apiHandler) hostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		host = strings.ToLower(strings.Trim(host, "[]"))
		if !h.allowed[host] {
			writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("host %q is not one this server answers for; use its address, or start coord serve with --allowed-host %s", r.Host, host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenOnly refuses requests without the token (if there is one).
func (h *apiHandler) tokenOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.cfg.Token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(h.cfg.Token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="flotilla"`)
				msg := "missing API token: send the header \"Authorization: Bearer TOKEN\" with the token coord serve was given (--api-token-file or FLOTILLA_API_TOKEN)"
				if ok {
					msg = "wrong API token: send the token coord serve was given (--api-token-file or FLOTILLA_API_TOKEN)"
				}
				writeError(w, http.StatusUnauthorized, msg)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (h *apiHandler) list(w http.ResponseWriter, r *http.Request) {
	l, err := h.s.listing()
	if err != nil {
		writeServiceError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(l.json())
}

func (h *apiHandler) nodes(w http.ResponseWriter, r *http.Request) {
	n, err := h.s.Nodes()
	if err != nil {
		writeServiceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (h *apiHandler) alerts(w http.ResponseWriter, r *http.Request) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("since %q is not an alert number; give the \"next\" of the previous answer, or 0", v))
			return
		}
		since = n
	}
	list, next, err := h.s.Alerts(since)
	if err != nil {
		writeServiceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": list, "next": next})
}

func (h *apiHandler) show(w http.ResponseWriter, r *http.Request) {
	d, err := h.s.Get(r.PathValue("id"))
	if err != nil {
		writeServiceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (h *apiHandler) pause(w http.ResponseWriter, r *http.Request) {
	h.reply(w)(h.s.Pause(r.PathValue("id")))
}

func (h *apiHandler) resume(w http.ResponseWriter, r *http.Request) {
	h.reply(w)(h.s.Resume(r.PathValue("id")))
}

func (h *apiHandler) reply(w http.ResponseWriter) func(JobInfo, error) {
	return func(in JobInfo, err error) {
		if err != nil {
			writeServiceError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, in)
	}
}

func (h *apiHandler) remove(w http.ResponseWriter, r *http.Request) {
	del, err := boolParam(r.URL.Query().Get("delete_data"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "delete_data: "+err.Error())
		return
	}
	id := r.PathValue("id")
	if err := h.s.Remove(id, del); err != nil {
		writeServiceError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": id, "data_deleted": del})
}

func (h *apiHandler) limits(w http.ResponseWriter, r *http.Request) {
	var l Limits
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be JSON such as {\"seed\": true, \"seed_ratio\": 2, \"seed_time\": \"24h\"}: "+err.Error())
		return
	}
	h.reply(w)(h.s.SetLimits(r.PathValue("id"), l))
}

// add takes a torrent as the raw body or as the "torrent" part of a
// multipart form; options come as query parameters or form fields.
func (h *apiHandler) add(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > h.cfg.MaxUpload {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, tooLarge(h.cfg.MaxUpload))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxUpload)
	data, opts, err := h.readAdd(r)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, tooLarge(h.cfg.MaxUpload))
		return
	case err != nil:
		writeServiceError(w, err)
		return
	}
	in, err := h.s.Add(data, opts)
	if errors.Is(err, ErrExists) {
		writeJSON(w, http.StatusConflict, map[string]any{"error": fmt.Sprintf("%v as job %s; see GET /api/v1/torrents/%s", err, in.ID, in.ID), "id": in.ID})
		return
	}
	if err != nil {
		writeServiceError(w, err)
		return
	}
	w.Header().Set("Location", "/api/v1/torrents/"+in.ID)
	writeJSON(w, http.StatusCreated, in)
}

func tooLarge(n int64) string {
	return fmt.Sprintf("the upload is larger than %d bytes, the most this server takes for a torrent (coord serve --max-upload)", n)
}

func (h *apiHandler) readAdd(r *http.Request) ([]byte, AddOptions, error) {
	fields := map[string]string{}
	for k, v := range r.URL.Query() {
		fields[k] = v[0]
	}
	var data []byte
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, AddOptions{}, fmt.Errorf("%w: bad multipart form: %v", ErrBadRequest, err)
		}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, AddOptions{}, fmt.Errorf("%w: bad multipart form: %v", ErrBadRequest, err)
			}
			b, err := io.ReadAll(p)
			if err != nil {
				return nil, AddOptions{}, err
			}
			if p.FormName() == "torrent" {
				data = b
			} else {
				fields[p.FormName()] = string(b)
			}
		}
		if m := fields["magnet"]; m != "" {
			data = []byte(m)
		}
		if data == nil {
			return nil, AddOptions{}, fmt.Errorf("%w: the form has no \"torrent\" file part; send the .torrent as the part named torrent", ErrBadRequest)
		}
	} else {
		var err error
		if data, err = io.ReadAll(r.Body); err != nil {
			return nil, AddOptions{}, err
		}
	}
	opts, err := addOptions(fields)
	return data, opts, err
}

// ErrBadRequest is a request the API cannot read.
var ErrBadRequest = errors.New("bad request")

// addOptions reads paused, seed, seed_ratio and seed_time.
func addOptions(f map[string]string) (AddOptions, error) {
	var o AddOptions
	var err error
	if o.Paused, err = boolParam(f["paused"]); err != nil {
		return o, fmt.Errorf("%w: paused: %v", ErrBadRequest, err)
	}
	if f["seed"] == "" && f["seed_ratio"] == "" && f["seed_time"] == "" {
		return o, nil
	}
	l := Limits{Seed: true}
	if f["seed"] != "" {
		if l.Seed, err = boolParam(f["seed"]); err != nil {
			return o, fmt.Errorf("%w: seed: %v", ErrBadRequest, err)
		}
	}
	if v := f["seed_ratio"]; v != "" {
		if l.Ratio, err = strconv.ParseFloat(v, 64); err != nil {
			return o, fmt.Errorf("%w: seed_ratio %q is not a number", ErrBadRequest, v)
		}
	}
	if v := f["seed_time"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return o, fmt.Errorf("%w: seed_time %q is not a duration such as 90m or 24h", ErrBadRequest, v)
		}
		l.Time = Duration(d)
	}
	if err := l.Validate(); err != nil {
		return o, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	o.Limits = &l
	return o, nil
}

func boolParam(v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%q is not true or false", v)
	}
	return b, nil
}

func writeServiceError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrExists):
		code = http.StatusConflict
	case errors.Is(err, ErrMagnet), errors.Is(err, metainfo.ErrMagnetNotSupported):
		code, err = http.StatusNotImplemented, ErrMagnet
	case errors.Is(err, ErrBadTorrent), errors.Is(err, ErrBadRequest), errors.Is(err, errLimits):
		code = http.StatusBadRequest
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	}
	writeError(w, code, err.Error())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
