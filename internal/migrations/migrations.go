// Package migrations loads the versioned SQL migrations that the SQLite and
// PostgreSQL adapters embed. Each adapter applies them its own way (its own
// locking and transactions); the naming rules and their checks live here,
// once.
package migrations

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one schema step: migrations/NNNN_name.sql.
type Migration struct {
	// Version is NNNN: migrations run in version order, 1..N.
	Version int
	// Name is the file name, e.g. 0001_init.sql.
	Name string
	// SQL is the file's content.
	SQL string
}

// Load reads migrations/*.sql from fsys, in version order. Versions must run
// 1..N without gaps or repeats, so that a mistake in naming fails every test.
func Load(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", base)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: base, SQL: string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions run 1..N without gaps or repeats)", m.Name, m.Version, i+1)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no migrations embedded")
	}
	return out, nil
}
