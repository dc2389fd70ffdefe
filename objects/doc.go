// Package objects is the registry of LwM2M object models (OMA object definitions and DDF XML).
package objects
