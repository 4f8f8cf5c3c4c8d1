//go:build tools

// Package tools pins the External Secrets Operator controller (v0.16 serves external-secrets.io/v1).
package tools

import _ "github.com/external-secrets/external-secrets"
