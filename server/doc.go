// Package server is the LwM2M management and bootstrap server.
package server
