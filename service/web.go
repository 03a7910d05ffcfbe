package service

import (
	"embed"
	"io/fs"
	"net/http"
)

// webFiles is the dashboard: plain HTML, CSS and JavaScript, no external
// resource and no build step.
//
//go:embed web
var webFiles embed.FS

// dashboard serves the dashboard's files. They need no token (the page
// asks for it); a Content-Security-Policy keeps the page to its own
// origin.
func dashboard() http.Handler {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "the dashboard's files are read with GET; the API is under /api/v1/")
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}
