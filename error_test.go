package tollgate

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// TestCodeTableComplete parses error.go and checks that every Code constant
// has a row in the code table, so no code can reach a client unmapped.
func TestCodeTableComplete(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "error.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		vs, ok := node.(*ast.ValueSpec)
		if !ok {
			return true
		}
		id, ok := vs.Type.(*ast.Ident)
		if !ok || id.Name != "Code" {
			return true
		}
		for _, v := range vs.Values {
			lit, ok := v.(*ast.BasicLit)
			if !ok {
				continue
			}
			c := Code(lit.Value[1 : len(lit.Value)-1])
			n++
			if !c.Known() {
				t.Errorf("code %q has no row in the code table", c)
			}
		}
		return true
	})
	if n < 20 {
		t.Fatalf("found only %d Code constants; the parser walk is broken", n)
	}
}

func TestCodeMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code   Code
		status int
		close  int
	}{
		{CodeInvalidRequest, 400, 0},
		{CodeInvalidTicket, 401, ClosePolicy},
		{CodeOriginNotAllowed, 403, ClosePolicy},
		{CodeBlocked, 403, ClosePolicy},
		{CodeRateLimited, 429, 0},
		{CodeUnavailable, 503, CloseInternalError},
		{CodeUsernameTaken, 409, 0},
		{CodeSessionRevoked, 401, ClosePolicy},
		{CodeTokenExpired, 401, ClosePolicy},
		{CodeMessageTooBig, 500, CloseMessageTooBig},
		{CodeNotJoined, 500, 0},
		{Code("made_up"), 500, 0},
	}
	for _, tc := range tests {
		t.Run(string(tc.code), func(t *testing.T) {
			t.Parallel()
			if got := tc.code.HTTPStatus(); got != tc.status {
				t.Errorf("HTTPStatus = %d, want %d", got, tc.status)
			}
			if got := tc.code.CloseCode(); got != tc.close {
				t.Errorf("CloseCode = %d, want %d", got, tc.close)
			}
		})
	}
}

func TestErrorCodeOfForeignErrors(t *testing.T) {
	t.Parallel()
	if c := ErrorCode(errors.New("boom")); c != CodeInternal {
		t.Errorf("foreign error: %q", c)
	}
	if c := ErrorCode(fmt.Errorf("x: %w", ErrUnavailable)); c != CodeUnavailable {
		t.Errorf("unavailable: %q", c)
	}
	wrapped := fmt.Errorf("ctx: %w", &Error{Code: CodeBlocked})
	if c := ErrorCode(wrapped); c != CodeBlocked {
		t.Errorf("wrapped *Error: %q", c)
	}
	e := AsError(errors.New("db exploded with password hunter2"))
	if e.ClientMessage() != "Internal error." {
		t.Errorf("foreign error text leaked to client: %q", e.ClientMessage())
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := Secret("tg_super_secret_value")
	type holder struct {
		S Secret `json:"-"`
		T Secret
	}
	h := holder{S: s, T: s}
	for _, out := range []string{
		fmt.Sprint(s), fmt.Sprintf("%v %s %q %x %#v", s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", h, h, h),
	} {
		if containsSecret(out, string(s)) {
			t.Errorf("secret printed: %s", out)
		}
	}
	b, _ := s.MarshalJSON()
	if containsSecret(string(b), string(s)) {
		t.Errorf("secret marshalled: %s", b)
	}
	if s.Reveal() != "tg_super_secret_value" {
		t.Error("Reveal lost the value")
	}
}

func containsSecret(out, secret string) bool {
	for i := 0; i+len(secret) <= len(out); i++ {
		if out[i:i+len(secret)] == secret {
			return true
		}
	}
	return false
}

func TestValidNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		user bool
		room bool
	}{
		{"ab", false, true},
		{"abc", true, true},
		{"Alice_1.x-y", true, false},
		{"general", true, true},
		{"", false, false},
		{"has space", false, false},
		{"ümlaut", false, false},
		{string(make([]byte, 33)), false, false},
		{"a/b", false, false},
	} {
		if got := ValidUsername(tc.name); got != tc.user {
			t.Errorf("ValidUsername(%q) = %v", tc.name, got)
		}
		if got := ValidRoom(tc.name); got != tc.room {
			t.Errorf("ValidRoom(%q) = %v", tc.name, got)
		}
	}
}
