package stomp

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// BenchmarkEncodeMessage compares encoding one room message as a STOMP
// MESSAGE frame and as the JSON protocol's message frame (the same shape as
// jsonproto.MessageFrame), in process. Fan-out encodes once per delivery
// and key, so this is the per-message cost, not the per-subscriber cost.
func BenchmarkEncodeMessage(b *testing.B) {
	m := tollgate.Message{Room: "bench", ID: 123456, UserID: "0123456789abcdef0123456789abcdef",
		UserName: "alice", Text: strings.Repeat("hello everyone ", 6), TS: time.Now()}
	b.Run("proto=json", func(b *testing.B) {
		type from struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		type frame struct {
			Type string    `json:"type"`
			Room string    `json:"room"`
			ID   int64     `json:"id"`
			From from      `json:"from"`
			Text string    `json:"text"`
			TS   time.Time `json:"ts"`
		}
		b.ReportAllocs()
		for b.Loop() {
			out, _ := json.Marshal(frame{"message", m.Room, m.ID, from{m.UserID, m.UserName}, m.Text, m.TS.UTC()})
			b.SetBytes(int64(len(out)))
		}
	})
	b.Run("proto=stomp", func(b *testing.B) {
		k := deliveryKey{v: V12, sub: "sub-0", hasID: true}
		b.ReportAllocs()
		for b.Loop() {
			out := appendMessage(nil, m, k)
			b.SetBytes(int64(len(out)))
		}
	})
}
