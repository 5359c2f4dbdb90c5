package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/lxzan/gws"
)

// ClientConfig configures Dial. It serves tollgate's own tools (the load
// generator, tests); applications use any WebSocket client.
type ClientConfig struct {
	// URL is the ws:// address of the endpoint, query included.
	URL string
	// Header is sent with the upgrade request (Authorization, Origin,
	// Cookie, Sec-WebSocket-Protocol).
	Header http.Header
	// LocalIP, if set, is the source address to dial from (e.g. 127.0.0.7),
	// so many clients do not exhaust one address's ephemeral ports.
	LocalIP string
	// Timeout bounds the dial and the handshake. Default 10s.
	Timeout time.Duration
	// ReadBufferSize per client. Default 4096.
	ReadBufferSize int
	// OnMessage receives every data frame; it must not retain data.
	OnMessage func(data []byte)
	// OnClose runs once when the connection ends.
	OnClose func(code int, reason string)
}

// HandshakeError is a refused upgrade: the HTTP status and the contract's
// error code from the JSON body.
type HandshakeError struct {
	Status int
	Code   string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("handshake refused: %d %s", e.Status, e.Code)
}

// Client is a client-side WebSocket. Write is safe for concurrent use.
type Client struct {
	sock *gws.Conn
}

// Dial opens a client WebSocket and starts reading in its own goroutine.
// A refused upgrade returns a *HandshakeError.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("ws: dial: bad URL")
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	if cfg.LocalIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(cfg.LocalIP)}
	}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	h := &clientHandler{cfg: cfg}
	sock, resp, err := gws.NewClientFromConn(h, &gws.ClientOption{
		Addr:               cfg.URL,
		RequestHeader:      cfg.Header,
		HandshakeTimeout:   cfg.Timeout,
		ReadBufferSize:     cfg.ReadBufferSize,
		ReadMaxPayloadSize: 16 << 20,
		NewSession:         func() gws.SessionStorage { return &slot{} },
	}, conn)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			he := &HandshakeError{Status: resp.StatusCode}
			var body struct {
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if resp.Body != nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				_ = json.Unmarshal(b, &body)
			}
			he.Code = body.Error.Code
			return nil, he
		}
		return nil, err
	}
	c := &Client{sock: sock}
	go sock.ReadLoop()
	return c, nil
}

// Write sends one text frame.
func (c *Client) Write(data []byte) error { return c.sock.WriteMessage(gws.OpcodeText, data) }

// Subprotocol is the negotiated subprotocol.
func (c *Client) Subprotocol() string { return c.sock.SubProtocol() }

// Close sends a normal close frame and closes the connection.
func (c *Client) Close() error { return c.sock.WriteClose(1000, nil) }

// CloseNow closes the TCP connection without a close handshake.
func (c *Client) CloseNow() error { return c.sock.NetConn().Close() }

type clientHandler struct {
	cfg ClientConfig
}

func (h *clientHandler) OnOpen(*gws.Conn) {}
func (h *clientHandler) OnClose(_ *gws.Conn, err error) {
	if h.cfg.OnClose == nil {
		return
	}
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		h.cfg.OnClose(int(ce.Code), string(ce.Reason))
		return
	}
	h.cfg.OnClose(1006, "")
}
func (h *clientHandler) OnPing(s *gws.Conn, p []byte) { _ = s.WritePong(p) }
func (h *clientHandler) OnPong(*gws.Conn, []byte)     {}
func (h *clientHandler) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	if h.cfg.OnMessage != nil {
		h.cfg.OnMessage(m.Bytes())
	}
}
