// Package inplace simulates NOR flash and installs delta packages in place on it.
package inplace
