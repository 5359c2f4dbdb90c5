package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileBytes bounds the config file read into memory.
const maxFileBytes = 1 << 20

// Load returns the configuration of `tollgate serve` from args (the
// arguments after "serve"), the environment as seen through getenv (nil: an
// empty environment) and the YAML file named by --config or TOLLGATE_CONFIG,
// read from disk. It is [LoadWith] with os.ReadFile; see LoadWith for the rules.
func Load(args []string, getenv func(string) string) (Config, error) {
	return LoadWith(args, getenv, os.ReadFile)
}

// LoadWith is Load with the config file read through readFile (nil:
// os.ReadFile). Apart from readFile it is a pure function: it reads no flag,
// variable or file of the process itself, and prints nothing.
//
// For each setting the first of these wins: the flag --NAME, the variable
// TOLLGATE_<NAME> (upper snake case; an empty variable counts as unset), the
// key NAME of the file, the default. Only the winning value is parsed.
// Derived values are then resolved once (see [Config]) and the result is
// validated. The error names the source of each bad value — "--ticket-ttl",
// "TOLLGATE_TICKET_TTL", "tollgate.yaml:3: ticket-ttl", or
// "--ping-interval (default)" for a default that conflicts with a given value
// — and says what is wrong; all problems found are joined with errors.Join.
// The file must be a single YAML mapping whose keys are flag names: an
// unknown or repeated key is an error. Errors never show the value of a
// store URL, which may hold a password.
//
// When args ask for help (-h, --help), LoadWith returns an error for which
// errors.Is(err, flag.ErrHelp) holds; the caller prints [Usage]. Positional
// arguments are an error: sub-commands are parsed by the caller.
func LoadWith(args []string, getenv func(string) string, readFile func(string) ([]byte, error)) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	table := settings()
	flags, err := parseFlags(table, args)
	if err != nil {
		return Config{}, err
	}

	var file map[string]raw
	path, pathLabel := "", ""
	if r, ok := flags["config"]; ok {
		path, pathLabel = r.s, "--config"
	} else if v := getenv(envName("config")); v != "" {
		path, pathLabel = v, envName("config")
	}
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", pathLabel, err)
		}
		if file, err = parseFile(table, path, data); err != nil {
			return Config{}, err
		}
	}

	c := base()
	given := make(map[string]string) // setting name -> label of the source
	failed := make(map[string]bool)  // settings whose value did not parse
	var errs []error
	for i := range table {
		s := &table[i]
		r, label, ok := pick(s, flags, getenv, file)
		if !ok {
			continue
		}
		given[s.name] = label
		if err := apply(s, &c, r); err != nil {
			failed[s.name] = true
			errs = append(errs, labelled(label, err)...)
		}
	}
	derive(&c, given)
	label := func(name string) string {
		if l, ok := given[name]; ok {
			return l
		}
		return "--" + name + " (default)"
	}
	errs = append(errs, c.validate(table, label, failed)...)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// labelled prefixes err, or each error joined in it, with label, so that
// every line of the final message names its source.
func labelled(label string, err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, labelled(label, e)...)
		}
		return out
	}
	return []error{fmt.Errorf("%s: %w", label, err)}
}

// raw is one unparsed value: a string, or list items when it came as a
// repeated list flag or a YAML sequence.
type raw struct {
	s      string
	items  []string
	isList bool
	label  string // the source, for values from the config file
}

// pick returns the winning raw value of s and the label of its source.
func pick(s *setting, flags map[string]raw, getenv func(string) string, file map[string]raw) (raw, string, bool) {
	if r, ok := flags[s.name]; ok {
		return r, "--" + s.name, true
	}
	if v := getenv(envName(s.name)); v != "" {
		return raw{s: v}, envName(s.name), true
	}
	if r, ok := file[s.name]; ok {
		return r, r.label, true
	}
	return raw{}, "", false
}

// apply parses r into c as setting s.
func apply(s *setting, c *Config, r raw) error {
	if !s.list {
		if r.isList {
			return errors.New("takes one value, not a list")
		}
		return s.parse(c, r.s)
	}
	items := r.items
	if !r.isList {
		items = splitList(r.s)
	}
	for _, it := range items {
		if it == "" {
			return errors.New("has an empty entry in its list")
		}
	}
	return s.parseList(c, items)
}

// splitList splits a comma list, trimming spaces; "" is the empty list.
func splitList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return []string{}
	}
	items := strings.Split(v, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	return items
}

// flagValue records the raw text of one flag; parsing happens later, only
// for the winning source.
type flagValue struct {
	s   *setting
	r   raw
	set bool
}

func (f *flagValue) String() string { return "" }

func (f *flagValue) IsBoolFlag() bool { return f.s != nil && f.s.isBool() }

func (f *flagValue) Set(v string) error {
	if f.s.list {
		// A repeated list flag adds to the list.
		f.r.isList = true
		f.r.items = append(f.r.items, splitList(v)...)
	} else {
		f.r.s = v
	}
	f.set = true
	return nil
}

// parseFlags parses args with a private FlagSet and returns the raw value of
// every flag given.
func parseFlags(table []setting, args []string) (map[string]raw, error) {
	fs := flag.NewFlagSet("tollgate serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	values := make([]*flagValue, len(table))
	for i := range table {
		values[i] = &flagValue{s: &table[i]}
		fs.Var(values[i], table[i].name, table[i].usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		// The flag package's messages name the flag, not its value, except
		// "bad flag syntax: ---name=value", which quotes the whole argument.
		if arg, ok := strings.CutPrefix(err.Error(), "bad flag syntax: "); ok {
			head, _, _ := strings.Cut(arg, "=")
			return nil, fmt.Errorf("bad flag syntax: %s (see --help)", head)
		}
		return nil, fmt.Errorf("%w (see --help)", err)
	}
	if rest := fs.Args(); len(rest) > 0 {
		return nil, fmt.Errorf("unexpected argument %q: settings are flags (--name=value)", SecretURL(rest[0]).Redacted())
	}
	out := make(map[string]raw)
	for _, v := range values {
		if v.set {
			out[v.s.name] = v.r
		}
	}
	return out, nil
}

// parseFile parses the YAML config file: one mapping from setting names to
// scalars or sequences of scalars.
func parseFile(table []setting, path string, data []byte) (map[string]raw, error) {
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: the file is larger than %d bytes", path, maxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, fmt.Errorf("%s:%d: the file holds more than one YAML document", path, extra.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the file must be a mapping of setting names to values", path, root.Line)
	}
	known := make(map[string]bool, len(table))
	for _, s := range table {
		known[s.name] = true
	}
	out := make(map[string]raw)
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], deref(root.Content[i+1])
		at := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s", path, k.Line, fmt.Sprintf(format, args...)))
		}
		if k.Kind != yaml.ScalarNode {
			at("keys must be setting names")
			continue
		}
		name := k.Value
		switch {
		case !known[name]:
			at("%s: unknown setting (the keys are the flag names, like data-dir)", strconv.Quote(name))
			continue
		case name == "config":
			at("config: cannot be set inside the config file")
			continue
		}
		if _, dup := out[name]; dup {
			at("%s: set twice", name)
			continue
		}
		r, err := fileValue(v)
		if err != nil {
			at("%s: %v", name, err)
			continue
		}
		r.label = fmt.Sprintf("%s:%d: %s", path, k.Line, name)
		out[name] = r
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// fileValue turns a YAML value into a raw value: a scalar (null is ""), or a
// sequence of scalars.
func fileValue(v *yaml.Node) (raw, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if isNull(v) {
			return raw{}, nil
		}
		return raw{s: v.Value}, nil
	case yaml.SequenceNode:
		r := raw{isList: true, items: []string{}}
		for _, it := range v.Content {
			it = deref(it)
			if it.Kind != yaml.ScalarNode || isNull(it) {
				return raw{}, errors.New("list entries must be single values")
			}
			r.items = append(r.items, strings.TrimSpace(it.Value))
		}
		return r, nil
	case yaml.MappingNode:
		return raw{}, errors.New("must be a value or a list, not a mapping")
	}
	return raw{}, errors.New("must be a value or a list")
}

// deref follows aliases (a bounded number of hops, as a cycle cannot be
// built from a parsed document but a hand-made node might hold one).
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; i < 8 && n != nil && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}
