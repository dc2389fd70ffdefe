package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
)

func init() {
	registerGroup(domainGroup, "domains (tenants) of a running server: create, list (the operator's token)")
	registerGroup(tokenGroup, "API tokens of your domain: create, list, revoke (a domain administrator's token)")
}

// domainGroup is `fota domain`: domains, made with the operator's token
// (FOTA_API_TOKEN of the server).
var domainGroup = group{
	name:    "domain",
	summary: "Domains (tenants) of a running server, each with its own devices, credentials, firmware, campaigns and tokens; with the operator's token (over the HTTP API: --url, --api-token-file or $FOTA_URL, $FOTA_API_TOKEN).",
	subs: []subcommand{
		{name: "create", args: "NAME", summary: "create a domain and print its administrator's token (shown once)", run: domainCreate},
		{name: "list", aliases: []string{"ls"}, summary: "list the domains", run: domainList},
	},
	examples: []string{"fota domain create water --json", "fota domain list"},
}

// tokenGroup is `fota token`: the tokens of the caller's domain.
var tokenGroup = group{
	name:    "token",
	summary: "API tokens of the domain your token belongs to: roles viewer (read), operator (device operations, campaigns, firmware), administrator (credentials, tokens); with an administrator's token.",
	subs: []subcommand{
		{name: "create", args: "--role R", summary: "make a token and print it (shown once; the server keeps its hash)", run: tokenCreate},
		{name: "list", aliases: []string{"ls"}, summary: "list the domain's tokens (never their secrets)", run: tokenList},
		{name: "revoke", args: "ID", summary: "revoke a token at once", run: tokenRevoke},
	},
	examples: []string{"fota token create --role viewer --expires 720h --json", "fota token list", "fota token revoke 3f2a9c01b7de"},
}

// printAnswer prints the API's JSON answer as is (--json) or through text.
func printAnswer(data []byte, asJSON bool, text func() error) error {
	if asJSON {
		_, err := os.Stdout.Write(data)
		return err
	}
	return text()
}

func domainCreate(args []string) error {
	fs := newFlags("domain create", "NAME", "Create a domain (a-z, 0-9, '-') and print its administrator's token, shown this once: hand it to the domain's administrator, who makes the domain's other tokens with `fota token create`.",
		"fota domain create water --json")
	api := apiFlags(fs.FlagSet)
	asJSON := fs.Bool("json", false, `print the API's JSON answer ({"name", "adminToken", ...})`)
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	a, err := api()
	if err != nil {
		return err
	}
	data, err := a.do("POST", "/api/domains", map[string]string{"name": pos[0]})
	if err != nil {
		return err
	}
	return printAnswer(data, *asJSON, func() error {
		var d struct{ Name, AdminToken string }
		if err := json.Unmarshal(data, &d); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "domain %s created; its administrator's token follows (shown once; keep it in a file or a secret store):\n", d.Name)
		fmt.Println(d.AdminToken)
		return nil
	})
}

func domainList(args []string) error {
	fs := newFlags("domain list", "", "List the domains.", "fota domain list")
	api := apiFlags(fs.FlagSet)
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	a, err := api()
	if err != nil {
		return err
	}
	data, err := a.do("GET", "/api/domains", nil)
	if err != nil {
		return err
	}
	return printAnswer(data, *asJSON, func() error {
		var ds []struct{ Name, Created string }
		if err := json.Unmarshal(data, &ds); err != nil {
			return err
		}
		for _, d := range ds {
			fmt.Println(d.Name)
		}
		return nil
	})
}

func tokenCreate(args []string) error {
	fs := newFlags("token create", "--role R", "Make a token of your domain and print it, shown this once (the server keeps only its SHA-256). Every use of it is in the domain's audit trail.",
		"fota token create --role operator --expires 720h --name night-shift --json")
	api := apiFlags(fs.FlagSet)
	role := fs.String("role", "", "viewer (read), operator (device operations, campaigns, firmware) or administrator (credentials, tokens) (required)")
	expires := fs.String("expires", "", "when it stops working: a duration (720h) or an RFC 3339 time (default: never)")
	name := fs.String("name", "", "a name for the token, for the listing and audit")
	asJSON := fs.Bool("json", false, `print the API's JSON answer ({"token", "id", ...})`)
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	if *role == "" {
		return fs.usageError("--role is required")
	}
	a, err := api()
	if err != nil {
		return err
	}
	data, err := a.do("POST", "/api/tokens", map[string]string{"role": *role, "expires": *expires, "name": *name})
	if err != nil {
		return err
	}
	return printAnswer(data, *asJSON, func() error {
		var t struct{ ID, Role, Domain, Token string }
		if err := json.Unmarshal(data, &t); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "token %s (%s of %s) follows, shown once:\n", t.ID, t.Role, t.Domain)
		fmt.Println(t.Token)
		return nil
	})
}

func tokenList(args []string) error {
	fs := newFlags("token list", "", "List your domain's tokens: IDs, roles, expiry and revocation, never the secrets.", "fota token list")
	api := apiFlags(fs.FlagSet)
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	if _, err := fs.parseN(args, 0, 0); err != nil {
		return err
	}
	a, err := api()
	if err != nil {
		return err
	}
	data, err := a.do("GET", "/api/tokens", nil)
	if err != nil {
		return err
	}
	return printAnswer(data, *asJSON, func() error {
		var ts []struct{ ID, Role, Name, Created, Expires, Revoked string }
		if err := json.Unmarshal(data, &ts); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tNAME\tCREATED\tEXPIRES\tREVOKED")
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, t.Name, t.Created, orDash(t.Expires), orDash(t.Revoked))
		}
		return tw.Flush()
	})
}

func tokenRevoke(args []string) error {
	fs := newFlags("token revoke", "ID", "Revoke a token of your domain: it is refused from the next request on.", "fota token revoke 3f2a9c01b7de")
	api := apiFlags(fs.FlagSet)
	pos, err := fs.parseN(args, 1, 1)
	if err != nil {
		return err
	}
	a, err := api()
	if err != nil {
		return err
	}
	if _, err := a.do("DELETE", "/api/tokens/"+pos[0], nil); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "token %s revoked\n", pos[0])
	return nil
}
