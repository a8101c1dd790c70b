package registry

import (
	"strings"
	"testing"
)

// TestValidateNameQuotesTheCharacter: a refused name says which character
// is wrong as the person typed it, a whole rune, not the first byte of its
// UTF-8 form ('Ã' for 'é').
func TestValidateNameQuotesTheCharacter(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{"café.example.com", `character 'é' not allowed in a domain label`},
		{"app.exämple.com", `character 'ä' not allowed in a domain label`},
		{"☃.example.com", `character '☃' not allowed in a domain label`},
		{"app_x.com", `character '_' not allowed in a domain label`},
		{"app\x00.com", `character '\x00' not allowed in a domain label`},
		{"zoë@example.com", `character 'ë' not allowed in local part`},
		{"me(x)@example.com", `character '(' not allowed in local part`},
		{"caf\xc3.example.com", `byte 0xc3 (not UTF-8) not allowed in a domain label`},
		{"m\xffe@example.com", `byte 0xff (not UTF-8) not allowed in local part`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.name)
			if err == nil || !strings.HasSuffix(err.Error(), tt.want) {
				t.Fatalf("ValidateName(%q) = %v, want an error ending %q", tt.name, err, tt.want)
			}
		})
	}
}
