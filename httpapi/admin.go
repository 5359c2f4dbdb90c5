package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// Bounds of an admin block (docs/api.md, "Admin API").
const (
	DefaultAdminBlock = time.Hour
	MaxAdminBlock     = 720 * time.Hour
	maxReasonLen      = 200
)

// Blocker manages blocks for the admin API; limit.Limiter implements it.
// Block closes the target's live sockets and audits "blocked"; Unblock
// audits "unblocked".
type Blocker interface {
	Block(ctx context.Context, kind tollgate.BlockKind, target, name, reason string, d time.Duration) (tollgate.Block, error)
	Unblock(ctx context.Context, kind tollgate.BlockKind, target string) (bool, error)
	List(ctx context.Context) ([]tollgate.Block, error)
}

// Admin is the admin API under /api/admin/ (docs/api.md, "Admin API"). Its
// callers authenticate with Authorization: Bearer only (never a cookie, so
// no cross-site request can use it): either the operator's admin token or
// the access token of a user whose stored account has the admin role.
type Admin struct {
	blocks   Blocker
	token    [sha256.Size]byte
	hasToken bool
}

// NewAdmin returns the admin API over blocks. token is the operator's admin
// token (--admin-token-file, TOLLGATE_ADMIN_TOKEN); empty means only admin
// users may call the API. Only its SHA-256 is kept, and presented tokens are
// compared with it in constant time.
func NewAdmin(blocks Blocker, token tollgate.Secret) *Admin {
	a := &Admin{blocks: blocks}
	if !token.Empty() {
		a.token, a.hasToken = sha256.Sum256([]byte(token.Reveal())), true
	}
	return a
}

func (s *Server) adminRoutes(mux *http.ServeMux) {
	handle := func(pattern string, h func(http.ResponseWriter, *http.Request, tollgate.ClientInfo)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			c := s.clientInfo(r)
			if err := s.authorizeAdmin(r, c); err != nil {
				s.writeError(w, r, err)
				return
			}
			h(w, r, c)
		})
	}
	handle("GET /api/admin/blocks", s.handleListBlocks)
	handle("POST /api/admin/blocks", s.handleAddBlock)
	handle("DELETE /api/admin/blocks/{target}", s.handleRemoveBlock)
	handle("POST /api/admin/users/{name}/disable", s.handleDisableUser)
	handle("POST /api/admin/users/{name}/revoke-sessions", s.handleRevokeSessions)
}

// authorizeAdmin accepts the admin token or an admin user's access token,
// both only as Authorization: Bearer. The role is read from the store, so a
// demoted admin loses the API at once, not when the token expires.
func (s *Server) authorizeAdmin(r *http.Request, c tollgate.ClientInfo) error {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" || len(r.Header.Values("Authorization")) != 1 {
		return tollgate.Errorf(tollgate.CodeUnauthenticated, "The admin API needs Authorization: Bearer.")
	}
	if s.admin.hasToken {
		sum := sha256.Sum256([]byte(raw))
		if subtle.ConstantTimeCompare(sum[:], s.admin.token[:]) == 1 {
			return nil
		}
	}
	p, err := s.auth.VerifyAccess(r.Context(), tollgate.Secret(raw))
	if err != nil {
		s.countFailure(r, c.IP, err)
		return err
	}
	u, err := s.auth.UserByID(r.Context(), p.UserID)
	if err != nil || !u.Admin || u.Disabled {
		return tollgate.Errorf(tollgate.CodeForbidden, "The admin API is for admins.")
	}
	return nil
}

// blockTarget parses "user:NAME" or "ip:ADDR" into a block kind and the
// stored target (a user id, or a canonical IP).
func (s *Server) blockTarget(ctx context.Context, spec string) (kind tollgate.BlockKind, target, name string, err error) {
	k, v, ok := strings.Cut(spec, ":")
	switch {
	case ok && k == "user":
		u, err := s.auth.UserNamed(ctx, v)
		if err != nil {
			return "", "", "", err
		}
		return tollgate.BlockUser, u.ID, u.Name, nil
	case ok && k == "ip":
		a, err := netip.ParseAddr(v)
		if err != nil {
			return "", "", "", tollgate.Errorf(tollgate.CodeInvalidRequest, "An IP block needs an IP address.")
		}
		return tollgate.BlockIP, a.Unmap().String(), "", nil
	}
	return "", "", "", tollgate.Errorf(tollgate.CodeInvalidRequest, `A block target is "user:NAME" or "ip:ADDR".`)
}

type blockJSON struct {
	Kind      tollgate.BlockKind `json:"kind"`
	Target    string             `json:"target"`
	Name      string             `json:"name,omitempty"`
	Reason    string             `json:"reason"`
	CreatedAt time.Time          `json:"created_at"`
	Until     time.Time          `json:"until"`
}

func toBlockJSON(b tollgate.Block) blockJSON {
	return blockJSON{Kind: b.Kind, Target: b.Target, Name: b.Name, Reason: b.Reason,
		CreatedAt: b.CreatedAt.UTC(), Until: b.Until.UTC()}
}

// GET /api/admin/blocks: the blocks in force.
func (s *Server) handleListBlocks(w http.ResponseWriter, r *http.Request, _ tollgate.ClientInfo) {
	bs, err := s.admin.blocks.List(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]blockJSON, len(bs))
	for i, b := range bs {
		out[i] = toBlockJSON(b)
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool        `json:"success"`
		Blocks  []blockJSON `json:"blocks"`
	}{true, out})
}

// POST /api/admin/blocks {"target":"user:NAME"|"ip:ADDR","for":"1h","reason"}.
func (s *Server) handleAddBlock(w http.ResponseWriter, r *http.Request, _ tollgate.ClientInfo) {
	var req struct {
		Target string `json:"target"`
		For    string `json:"for"`
		Reason string `json:"reason"`
	}
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	d := DefaultAdminBlock
	if req.For != "" {
		var err error
		if d, err = time.ParseDuration(req.For); err != nil || d < time.Second || d > MaxAdminBlock {
			s.writeError(w, r, tollgate.Errorf(tollgate.CodeInvalidRequest, `"for" is a duration from 1s to %s.`, MaxAdminBlock))
			return
		}
	}
	if len(req.Reason) > maxReasonLen {
		s.writeError(w, r, tollgate.Errorf(tollgate.CodeInvalidRequest, "The reason is over %d bytes.", maxReasonLen))
		return
	}
	if req.Reason == "" {
		req.Reason = "admin"
	}
	kind, target, name, err := s.blockTarget(r.Context(), req.Target)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b, err := s.admin.blocks.Block(r.Context(), kind, target, name, req.Reason, d)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		Success bool      `json:"success"`
		Block   blockJSON `json:"block"`
	}{true, toBlockJSON(b)})
}

// DELETE /api/admin/blocks/{target}: {"success":true,"removed":bool}.
func (s *Server) handleRemoveBlock(w http.ResponseWriter, r *http.Request, _ tollgate.ClientInfo) {
	kind, target, _, err := s.blockTarget(r.Context(), r.PathValue("target"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	removed, err := s.admin.blocks.Unblock(r.Context(), kind, target)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool `json:"success"`
		Removed bool `json:"removed"`
	}{true, removed})
}

// POST /api/admin/users/{name}/disable: disable the account, revoke its
// sessions and close its sockets (user_disabled).
func (s *Server) handleDisableUser(w http.ResponseWriter, r *http.Request, c tollgate.ClientInfo) {
	u, err := s.auth.UserNamed(r.Context(), r.PathValue("name"))
	if err == nil {
		err = s.auth.DisableUser(r.Context(), u.ID, c)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, okJSON{Success: true})
}

// POST /api/admin/users/{name}/revoke-sessions: revoke every session of the
// user and close their sockets (session_revoked).
func (s *Server) handleRevokeSessions(w http.ResponseWriter, r *http.Request, c tollgate.ClientInfo) {
	u, err := s.auth.UserNamed(r.Context(), r.PathValue("name"))
	var n int
	if err == nil {
		n, err = s.auth.RevokeUserSessions(r.Context(), u.ID, c)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool `json:"success"`
		Revoked int  `json:"revoked"`
	}{true, n})
}
