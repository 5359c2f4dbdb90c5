package config

// BoundedSettings lists the settings that have bounds, so that the external
// tests can check that their bounds table misses none.
func BoundedSettings() []string {
	var out []string
	for _, s := range settings() {
		if s.bounds != "" {
			out = append(out, s.name)
		}
	}
	return out
}

// SettingNames lists every setting, in table order.
func SettingNames() []string {
	var out []string
	for _, s := range settings() {
		out = append(out, s.name)
	}
	return out
}

// EnvName exposes envName.
func EnvName(name string) string { return envName(name) }
