package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Secrets (the API token, PSK keys) are never flag defaults: a default is
// printed by --help, and a value given on the command line is visible to
// every user of the machine in the process listing. Each secret is read, in
// this order, from --NAME-file, from --NAME (kept for scripts, discouraged)
// and from its environment variable, after the flags are parsed.

// secretFlags adds --NAME and --NAME-file to fs and returns the function
// that reads the secret after parsing ("" when none is given). what
// describes the secret, its back-quoted word naming the flag's value as in
// the flag package ("API bearer `token`").
func secretFlags(fs *flag.FlagSet, name, env, what string) func() (string, error) {
	val := fs.String(name, "", what+" (default $"+env+"; on the command line it shows in process listings: prefer $"+env+" or --"+name+"-file)")
	file := fs.String(name+"-file", "", "read the "+strings.ReplaceAll(what, "`", "")+" from `FILE` (its first line)")
	return func() (string, error) {
		switch {
		case *file != "":
			return readSecretFile(*file, "--"+name+"-file")
		case *val != "":
			return *val, nil
		}
		return strings.TrimSpace(os.Getenv(env)), nil
	}
}

// readSecretFile reads a secret kept in a file: its first line, trimmed.
func readSecretFile(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &exitError{2, fmt.Errorf("%s: %w", what, err)}
	}
	s, _, _ := strings.Cut(string(b), "\n")
	if s = strings.TrimSpace(s); s == "" {
		return "", &exitError{2, fmt.Errorf("%s: %s is empty", what, path)}
	}
	return s, nil
}

// tokenFlags adds --api-token and --api-token-file (default
// $FOTA_API_TOKEN).
func tokenFlags(fs *flag.FlagSet) func() (string, error) {
	return secretFlags(fs, "api-token", "FOTA_API_TOKEN", "API bearer `token`")
}
