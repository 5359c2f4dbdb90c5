package jsonproto

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// Request is a decoded client frame. Fields not used by its type are ignored.
type Request struct {
	Type     string `json:"type"`
	Room     string `json:"room"`
	Text     string `json:"text"`
	ClientID string `json:"client_id"`
	Since    int64  `json:"since"`
	Limit    int    `json:"limit"`
	// Token and Ticket are credentials (refresh, first-message auth); they
	// are Secrets so no log or error can print them.
	Token  tollgate.Secret `json:"token"`
	Ticket tollgate.Secret `json:"ticket"`
}

// Decode parses one client frame. It accepts exactly one JSON object with a
// string "type"; anything else is an invalid_request error that keeps the
// socket open.
func Decode(data []byte) (Request, error) {
	var r Request
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return r, tollgate.Errorf(tollgate.CodeInvalidRequest, "A frame is one JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return Request{}, tollgate.Errorf(tollgate.CodeInvalidRequest, "Invalid JSON or field types.")
	}
	if dec.InputOffset() != int64(len(data)) {
		// Anything after the object, even a stray "}" or "]" that
		// Decoder.More would let through.
		return Request{}, tollgate.Errorf(tollgate.CodeInvalidRequest, "A frame is one JSON object.")
	}
	if r.Type == "" {
		return Request{}, tollgate.Errorf(tollgate.CodeInvalidRequest, `The frame has no "type".`)
	}
	return r, nil
}

// Frames the server sends. Field names are the contract's.

type userJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Anonymous bool   `json:"anonymous,omitempty"`
}

type welcomeFrame struct {
	Type      string     `json:"type"`
	Protocol  string     `json:"protocol"`
	ConnID    string     `json:"conn_id"`
	User      userJSON   `json:"user"`
	ExpiresAt *time.Time `json:"expires_at"`
}

type joinedFrame struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	LastID int64  `json:"last_id"`
}

type leftFrame struct {
	Type string `json:"type"`
	Room string `json:"room"`
}

type ackFrame struct {
	Type     string `json:"type"`
	ClientID string `json:"client_id,omitempty"`
	ID       int64  `json:"id"`
	Room     string `json:"room"`
}

type fromJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// MessageFrame is a room message as clients receive it.
type MessageFrame struct {
	Type string    `json:"type"`
	Room string    `json:"room"`
	ID   int64     `json:"id"`
	From fromJSON  `json:"from"`
	Text string    `json:"text"`
	TS   time.Time `json:"ts"`
}

func messageFrame(m tollgate.Message) MessageFrame {
	return MessageFrame{Type: "message", Room: m.Room, ID: m.ID,
		From: fromJSON{ID: m.UserID, Name: m.UserName}, Text: m.Text, TS: m.TS.UTC()}
}

type historyFrame struct {
	Type     string         `json:"type"`
	Room     string         `json:"room"`
	Messages []MessageFrame `json:"messages"`
}

type errorFrame struct {
	Type       string `json:"type"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	Ref        string `json:"ref,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

type expiringFrame struct {
	Type      string    `json:"type"`
	ExpiresAt time.Time `json:"expires_at"`
}

type simpleFrame struct {
	Type string `json:"type"`
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own frame types are encoded; they always marshal.
		panic("jsonproto: encode: " + err.Error())
	}
	return b
}

func errorFrameOf(e *tollgate.Error, ref string) []byte {
	f := errorFrame{Type: "error", Code: string(e.Code), Message: e.ClientMessage(), Ref: ref}
	if e.RetryAfter > 0 {
		f.RetryAfter = int((e.RetryAfter + time.Second - 1) / time.Second)
	}
	return encode(f)
}
