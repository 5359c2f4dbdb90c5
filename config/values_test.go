package config

import (
	"testing"
	"time"
)

func TestFmtDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{500 * time.Millisecond, "500ms"},
		{30 * time.Second, "30s"},
		{5 * time.Minute, "5m"},
		{90 * time.Minute, "1h30m"},
		{24 * time.Hour, "24h"},
		{24*time.Hour + time.Second, "24h1s"},
		{time.Hour + 10*time.Minute + 5*time.Second, "1h10m5s"},
		{8760 * time.Hour, "8760h"},
		{-time.Second, "-1s"},
	} {
		got := fmtDuration(tc.d)
		if got != tc.want {
			t.Errorf("fmtDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != tc.d {
			t.Errorf("fmtDuration(%v) = %q does not parse back: %v, %v", tc.d, got, back, err)
		}
	}
}
