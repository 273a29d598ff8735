"""Access control: who may do what to which resource (docs/security.md "Access control")."""
