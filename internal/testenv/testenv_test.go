package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, port, addr string
	}{
		{"redis://127.0.0.1:6379/0", "6379", "127.0.0.1:6379"},
		{"redis://:pw@redis.internal/0", "6379", "redis.internal:6379"},
		{"redis://[::1]:7000", "6379", "[::1]:7000"},
		{"postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "5432", "127.0.0.1:5432"},
		{"postgres://u:pw@db1:5433,db2:5434/test", "5432", "db1:5433"},
		{"postgres:///test", "5432", "localhost:5432"},
		{"host=db.internal port=6543 user=postgres dbname=test", "5432", "db.internal:6543"},
		{"user=postgres dbname=test", "5432", "localhost:5432"},
		{"host=/var/run/postgresql dbname=test", "5432", ""},
	} {
		addr, shown, err := address(tc.raw, tc.port)
		if err != nil || addr != tc.addr {
			t.Errorf("address(%q) = %q, %v; want %q", tc.raw, addr, err, tc.addr)
		}
		if strings.Contains(shown, "pw") {
			t.Errorf("address(%q) shows the password: %q", tc.raw, shown)
		}
	}
	if _, shown, err := address("redis://u:secret@h:x:y/0", "6379"); err == nil || strings.Contains(shown, "secret") {
		t.Errorf("unparsable URL: shown %q, err %v", shown, err)
	}
}

// TestUnreachable runs itself in a child process against a closed port: a
// skip without CI, a failure with CI=true, and never the password in the
// output.
func TestUnreachable(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		Redis(t)
		t.Log("SERVICE-REACHABLE")
		return
	}
	t.Parallel()
	const secret = "s3cret-Pa55word"
	for _, tc := range []struct {
		ci       string
		fail     bool
		contains string
	}{
		{"", false, "SKIP"},
		{"false", false, "SKIP"},
		{"true", true, "CI=true, so this is a failure"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnreachable$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "CI="+tc.ci,
			RedisURLEnv+"=redis://user:"+secret+"@127.0.0.1:1/0")
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.fail {
			t.Errorf("CI=%q: child failed: %v, want failure %v\n%s", tc.ci, err, tc.fail, out)
		}
		if !strings.Contains(string(out), tc.contains) || strings.Contains(string(out), "SERVICE-REACHABLE") {
			t.Errorf("CI=%q: output lacks %q:\n%s", tc.ci, tc.contains, out)
		}
		if strings.Contains(string(out), secret) {
			t.Errorf("CI=%q: output shows the password:\n%s", tc.ci, out)
		}
	}
}
