package stomp

import (
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary bytes, split at an arbitrary point and in
// pieces of an arbitrary size, to a Decoder with small limits. Properties:
// it never panics; it never holds more than one frame's worth of bytes;
// every frame respects the limits; and decode∘encode∘decode is stable (a
// decoded frame, encoded for the same version, decodes to itself).
func FuzzDecode(f *testing.F) {
	seeds := []string{
		"CONNECT\naccept-version:1.2\nhost:h\nheart-beat:100,0\n\n\x00",
		"\n\r\nSEND\ndestination:/topic/a\ncontent-length:3\n\na\x00b\x00\n",
		"SEND\ndestination:/topic/a\\cb\\n\\r\\\\\n\nbody\x00SUBSCRIBE\nid:1\ndestination:/topic/a\nsince-id:5\n\n\x00",
		"MESSAGE\nsubscription:s\nmessage-id:1\ndestination:/topic/x\ncontent-type:text/plain\n\nhi\x00",
		"SEND\na:\\t\n\n\x00",
		"SEND\ncontent-length:99999\n\n",
		"BEGIN\ntransaction:t\n\n\x00COMMIT\ntransaction:t\n\n\x00DISCONNECT\nreceipt:r\n\n\x00",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint16(i*3), uint8(i%4))
	}
	lim := Limits{MaxFrameBytes: 512, MaxHeaders: 8, MaxHeaderLine: 128}
	versions := []Version{0, V10, V11, V12}
	f.Fuzz(func(t *testing.T, data []byte, step uint16, vi uint8) {
		v := versions[int(vi)%len(versions)]
		chunk := int(step%97) + 1
		d := NewDecoder(lim)
		d.SetVersion(v)
		var frames []*Frame
		var err error
	feed:
		for i := 0; i < len(data); i += chunk {
			d.Write(data[i:min(i+chunk, len(data))])
			for {
				var fr *Frame
				fr, err = d.Next()
				if err != nil {
					break feed
				}
				if fr == nil {
					break
				}
				frames = append(frames, fr)
			}
			if d.Buffered() > lim.MaxFrameBytes {
				t.Fatalf("buffered %d bytes, limit %d", d.Buffered(), lim.MaxFrameBytes)
			}
		}
		if err != nil {
			if _, ok := err.(*FrameError); !ok {
				t.Fatalf("error of type %T", err)
			}
		}
		for _, fr := range frames {
			if len(fr.Headers) > lim.MaxHeaders || len(fr.Command) == 0 || len(fr.Command) > MaxCommandLen {
				t.Fatalf("frame out of bounds: %v", fr)
			}
			enc := AppendFrame(nil, fr, v)
			if len(enc) > lim.MaxFrameBytes {
				t.Fatalf("re-encoded frame of %d bytes, limit %d", len(enc), lim.MaxFrameBytes)
			}
			d2 := NewDecoder(lim)
			d2.SetVersion(v)
			d2.Write(enc)
			back, err := d2.Next()
			if err != nil || back == nil {
				t.Fatalf("re-decode of %q: %v", enc, err)
			}
			if !reflect.DeepEqual(normal(back), normal(fr)) {
				t.Fatalf("unstable:\n first %v\nsecond %v", fr, back)
			}
		}
	})
}

// normal makes an empty body and a nil body compare equal.
func normal(f *Frame) Frame {
	g := *f
	if len(g.Body) == 0 {
		g.Body = nil
	}
	if len(g.Headers) == 0 {
		g.Headers = nil
	}
	return g
}
