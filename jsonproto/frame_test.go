package jsonproto_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/jsonproto"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		in   string
		typ  string // "" means an invalid_request error
		room string
	}{
		{`{"type":"join","room":"general"}`, "join", "general"},
		{" \n{\"type\":\"ping\"}\r\n ", "ping", ""},
		{`{"type":"ping"}}`, "", ""},
		{`{"type":"ping"}]`, "", ""},
		{`{"type":"ping"}{"type":"ping"}`, "", ""},
		{`{"type":"ping"} x`, "", ""},
		{`{"type":1}`, "", ""},
		{`{"room":"r"}`, "", ""},
		{`{"type":""}`, "", ""},
		{`["ping"]`, "", ""},
		{`"ping"`, "", ""},
		{`null`, "", ""},
		{``, "", ""},
		{`{"type":"history","since":"1"}`, "", ""},
		{`{"type":"history","limit":1e99}`, "", ""},
		{`{"type":"publish","text":"\ud800"}`, "publish", ""},
	}
	for _, tc := range tests {
		r, err := jsonproto.Decode([]byte(tc.in))
		if tc.typ == "" {
			if e := tollgate.AsError(err); err == nil || e.Code != tollgate.CodeInvalidRequest {
				t.Errorf("Decode(%q) = %+v, %v; want invalid_request", tc.in, r, err)
			}
			continue
		}
		if err != nil || r.Type != tc.typ || r.Room != tc.room {
			t.Errorf("Decode(%q) = %+v, %v; want type %q room %q", tc.in, r, err, tc.typ, tc.room)
		}
	}
}

// FuzzDecode: any input either decodes to a frame with a type or is an
// invalid_request error; it never panics, and neither the error nor a
// printed frame shows a credential it carried.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","room":"general"}`,
		`{"type":"publish","room":"r","text":"hi","client_id":"c"}`,
		`{"type":"history","room":"r","since":5,"limit":50}`,
		`{"type":"refresh","token":"SECRETSECRET"}`,
		`{"type":"auth","ticket":"SECRETSECRET"}`,
		`{"type":"ping"}}`, `[`, `{"type":"x","type":"y"}`, "\x00",
	} {
		f.Add([]byte(s))
	}
	const marker = "SECRETSECRET"
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := jsonproto.Decode(data)
		if err != nil {
			if e := tollgate.AsError(err); e.Code != tollgate.CodeInvalidRequest {
				t.Fatalf("error code %q", e.Code)
			}
			if strings.Contains(err.Error(), marker) {
				t.Fatal("the error text shows the input")
			}
			return
		}
		if r.Type == "" {
			t.Fatal("a frame without a type was accepted")
		}
		if r.Token.Reveal() == marker || r.Ticket.Reveal() == marker {
			if strings.Contains(fmt.Sprintf("%v %+v %#v", r, r, r), marker) {
				t.Fatal("printing a frame shows its credential")
			}
		}
	})
}
