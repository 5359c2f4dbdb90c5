package config

import (
	"fmt"
	"strings"
)

// Usage returns the help text of `tollgate serve`: every setting with its
// flag, value form, default, bounds and environment variable, in the order of
// [Config]. The caller prints it for --help (see [LoadWith]).
func Usage() string {
	var b strings.Builder
	b.WriteString(`Usage: tollgate serve [flags]

Every setting is a flag (--name=value), an environment variable TOLLGATE_<NAME>
and a key of the YAML file given by --config (name: value). A flag wins over the
environment, the environment over the file, the file over the default. Durations
use Go syntax (30s, 15m, 1h30m); sizes are bytes; lists are comma-separated (a
YAML sequence in the file); booleans are true, false, 1 or 0.

`)
	defaults := Defaults()
	for _, s := range settings() {
		head := "  --" + s.name
		if !s.isBool() {
			head += " " + s.arg
		}
		var notes []string
		if s.show != nil {
			if d := s.show(&defaults); d != "" {
				notes = append(notes, "default "+d)
			}
		}
		if s.bounds != "" {
			notes = append(notes, s.bounds)
		}
		notes = append(notes, "env "+envName(s.name))
		fmt.Fprintf(&b, "%s\n%s        (%s)\n", head, wrap(s.usage, "        ", 80), strings.Join(notes, "; "))
	}
	return b.String()
}

// wrap breaks text into lines of at most width columns (a longer word gets a
// line of its own), each starting with indent and ending with a newline.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	line := indent
	for _, w := range strings.Fields(text) {
		if line != indent && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
	return b.String()
}
