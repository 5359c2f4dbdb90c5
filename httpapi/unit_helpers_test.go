package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
)

func slogTo(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func httptestRequest() *http.Request { return httptest.NewRequest("GET", "/x", nil) }

type rec struct{ *httptest.ResponseRecorder }

func newRecorder() rec { return rec{httptest.NewRecorder()} }

func (r rec) response() response {
	out := response{status: r.Code, header: r.Header(), raw: r.Body.String(), cookies: map[string]*http.Cookie{}}
	_ = json.Unmarshal(r.Body.Bytes(), &out.body)
	return out
}
