//go:build tools

// Package tools pins kine, the etcd API over SQLite that backs the sandbox's API server.
package tools

import _ "github.com/k3s-io/kine"
