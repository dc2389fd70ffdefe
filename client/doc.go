// Package client is an LwM2M device client.
package client
