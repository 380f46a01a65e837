package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"gopkg.in/yaml.v3"
)

// Load reads the defaults (the embedded config.yaml), then the file at path
// if path is not empty, then every UPLOADS_ variable of env (os.Environ
// form), and validates the result. All problems are reported at once.
func Load(defaults []byte, path string, env []string) (Config, error) {
	var c Config
	var problems []error
	if err := decode(bytes.NewReader(defaults), &c); err != nil {
		return c, fmt.Errorf("embedded config.yaml: %w", err)
	}
	for _, name := range secretsSet(reflect.ValueOf(c), "") {
		problems = append(problems, fmt.Errorf("%s is a secret: set it in the environment (%s), not in config.yaml", name, EnvName(name)))
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config file: %w", err)
		}
		var fromFile Config
		if err := decode(bytes.NewReader(data), &fromFile); err != nil {
			return c, fmt.Errorf("config file %s: %w", path, err)
		}
		for _, name := range secretsSet(reflect.ValueOf(fromFile), "") {
			problems = append(problems, fmt.Errorf("%s is a secret: set it in the environment (%s), not in %s", name, EnvName(name), path))
		}
		if err := decode(bytes.NewReader(data), &c); err != nil {
			return c, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	problems = append(problems, applyEnv(&c, env)...)
	if err := c.Validate(); err != nil {
		problems = append(problems, err)
	}
	return c, errors.Join(problems...)
}

func decode(r io.Reader, c *Config) error {
	d := yaml.NewDecoder(r)
	d.KnownFields(true)
	if err := d.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// secretsSet lists the key paths of non-empty secrets in v.
func secretsSet(v reflect.Value, prefix string) []string {
	var out []string
	walk(v, prefix, func(key string, f reflect.Value) {
		switch x := f.Interface().(type) {
		case Secret:
			if x != "" {
				out = append(out, key)
			}
		case []Secret:
			if len(x) > 0 {
				out = append(out, key)
			}
		}
	})
	return out
}
