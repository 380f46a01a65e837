package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// EnvName is the environment variable that overrides a key path.
func EnvName(key string) string {
	var b strings.Builder
	b.WriteString(EnvPrefix)
	for i, part := range strings.Split(key, ".") {
		if i > 0 {
			b.WriteByte('_')
		}
		b.WriteString(upperSnake(part))
	}
	return b.String()
}

// upperSnake turns camelCase (with acronyms: apiBaseUrl, s3UsePathStyle,
// leaseTtl) into API_BASE_URL, S3_USE_PATH_STYLE, LEASE_TTL.
func upperSnake(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if i > 0 && unicode.IsUpper(c) && (unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1]) ||
			(i+1 < len(r) && unicode.IsLower(r[i+1]))) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(c))
	}
	return b.String()
}

// applyEnv sets every field whose UPLOADS_ variable is in env.
func applyEnv(c *Config, env []string) []error {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			vars[k] = v
		}
	}
	var problems []error
	known := map[string]bool{}
	walk(reflect.ValueOf(c).Elem(), "", func(key string, f reflect.Value) {
		name := EnvName(key)
		known[name] = true
		raw, ok := vars[name]
		if !ok {
			return
		}
		if err := setField(f, raw); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", name, err))
		}
	})
	var unknown []string
	for k := range vars {
		if !known[k] && k != EnvPrefix+"CONFIG" {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		problems = append(problems, fmt.Errorf("%s is not a configuration key (see config.yaml)", k))
	}
	return problems
}

var durationType = reflect.TypeOf(time.Duration(0))

func setField(f reflect.Value, raw string) error {
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 30s or 5m", raw)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(raw)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not true or false", raw)
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		f.SetInt(n)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		sl := reflect.MakeSlice(f.Type(), len(items), len(items))
		for i, s := range items {
			sl.Index(i).SetString(s)
		}
		f.Set(sl)
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}
